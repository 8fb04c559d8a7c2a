"""The tpu_scripts in --dry-run: the gcloud commands they would issue, and argument checks."""
import os
import shlex
import subprocess

import pytest

SCRIPTS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__)))), "tpu_scripts")
BASE = ["--name=aa-test", "--zone=us-west4-a"]
GINS = ["--gin-file=gin/models/2_5b.gin", "--gin-file=gin/runs/pretrain_2_5b_50b.gin"]


def run(script, *args, env=None):
  """(exit status, stdout, stderr) of a script run without gcloud on the PATH."""
  env = {"PATH": "/usr/bin:/bin", **(env or {})}  # No gcloud: a real call would fail.
  proc = subprocess.run(["bash", os.path.join(SCRIPTS, script), *args], capture_output=True,
                        text=True, env=env, timeout=60)
  return proc.returncode, proc.stdout, proc.stderr


def commands(stdout):
  """The printed commands as argument lists (lines starting with '+ ')."""
  return [shlex.split(line[2:]) for line in stdout.splitlines() if line.startswith("+ ")]


def test_create_direct_spot():
  rc, out, err = run("create.sh", *BASE, "--type=v5e-64", "--spot", "--dry-run")
  assert rc == 0, err
  assert commands(out) == [[
      "gcloud", "compute", "tpus", "tpu-vm", "create", "aa-test",
      "--accelerator-type=v5litepod-64", "--version=v2-alpha-tpuv5-lite",
      "--zone=us-west4-a", "--spot"]]


def test_create_queued_spot_and_preemptible():
  rc, out, _ = run("create.sh", *BASE, "--type=v4-32", "--queued", "--spot", "--project=p",
                   "--dry-run")
  assert rc == 0
  [cmd] = commands(out)
  assert cmd[:6] == ["gcloud", "compute", "tpus", "queued-resources", "create", "aa-test"]
  assert {"--node-id=aa-test", "--accelerator-type=v4-32", "--spot", "--project=p"} <= set(cmd)
  rc, out, _ = run("create.sh", *BASE, "--type=v5p-128", "--preemptible", "--dry-run")
  assert rc == 0 and "--preemptible" in commands(out)[0]


def test_setup_installs_the_tpu_extra_on_every_worker():
  rc, out, err = run("setup.sh", *BASE, "--repo=https://example.com/a.git", "--ref=v1",
                     "--dry-run")
  assert rc == 0, err
  [cmd] = commands(out)
  assert cmd[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "aa-test"]
  assert "--worker=all" in cmd
  remote = next(a for a in cmd if a.startswith("--command="))
  assert "git clone -q https://example.com/a.git" in remote and "checkout -q v1" in remote
  assert "pip install -q -c constraints.txt -e '.[tpu]'" in remote


def test_launch_runs_one_train_command_on_all_workers():
  rc, out, err = run("launch.sh", *BASE, "--model-dir=gs://bucket/runs/2_5b", *GINS,
                     "--gin=MIXTURE_OR_TASK_NAME='my_task'", "--dry-run")
  assert rc == 0, err
  [cmd] = commands(out)
  assert "--worker=all" in cmd
  remote = shlex.split(next(a for a in cmd if a.startswith("--command="))[len("--command="):])
  start = remote.index(".venv/bin/annotanchor")
  train = remote[start:remote.index(">")]
  assert train == [".venv/bin/annotanchor", "train", "--gin_file=gin/models/2_5b.gin",
                   "--gin_file=gin/runs/pretrain_2_5b_50b.gin",
                   "--gin.MODEL_DIR='gs://bucket/runs/2_5b'", "--gin.TrainConfig.distributed=True",
                   "--gin.MIXTURE_OR_TASK_NAME='my_task'"]
  assert remote[:3] == ["cd", "~/annotanchor", "&&"] and remote[start - 1] == "nohup"


def test_logs_and_teardown():
  rc, out, _ = run("logs.sh", *BASE, "--worker=3", "--dry-run")
  assert rc == 0 and "--worker=3" in commands(out)[0]
  assert commands(out)[0][-1] == "--command=tail -n 200 -F ~/train.log"
  rc, out, _ = run("teardown.sh", *BASE, "--queued", "--dry-run")
  assert rc == 0
  assert commands(out) == [["gcloud", "compute", "tpus", "queued-resources", "delete", "aa-test",
                            "--zone=us-west4-a", "--force", "--quiet"]]


def test_watch_recovers_with_the_same_train_command():
  rc, out, err = run("watch.sh", *BASE, "--type=v5e-64", "--spot", "--queued",
                     "--repo=https://example.com/a.git", "--model-dir=gs://bucket/runs/2_5b",
                     *GINS, "--dry-run")
  assert rc == 0, err
  cmds = commands(out)
  verbs = [" ".join(c[2:5]) for c in cmds]
  assert verbs == ["tpus queued-resources describe", "tpus queued-resources delete",
                   "tpus queued-resources create", "tpus tpu-vm ssh", "tpus tpu-vm ssh"]
  assert "--spot" in cmds[2]
  _, launch_out, _ = run("launch.sh", *BASE, "--model-dir=gs://bucket/runs/2_5b", *GINS,
                         "--dry-run")
  assert cmds[-1] == commands(launch_out)[0]  # The relaunch is the original launch.


@pytest.mark.parametrize("script,args,message", [
    ("create.sh", ["--zone=z", "--type=v5e-64"], "--name is required"),
    ("create.sh", ["--name=a", "--type=v5e-64"], "--zone is required"),
    ("create.sh", BASE + ["--type=v9-8"], "--type=v9-8: expected"),
    ("create.sh", BASE + ["--type=v5e-8", "--spot", "--preemptible"], "exclude each other"),
    ("create.sh", BASE + ["--type=v5e-8", "--bogus"], "unknown argument --bogus"),
    ("create.sh", ["--name=Bad_Name", "--zone=z", "--type=v5e-8"], "--name=Bad_Name"),
    ("launch.sh", BASE + ["--model-dir=/tmp/run"] + GINS, "must be a gs:// path"),
    ("launch.sh", BASE + ["--model-dir=gs://b/r"], "--gin-file is required"),
    ("launch.sh", BASE + ["--model-dir"], "--model-dir needs a value"),
    ("setup.sh", BASE, "--repo is required"),
    ("logs.sh", BASE + ["--worker=x"], "--worker=x"),
    ("watch.sh", BASE + ["--type=v5e-64", "--repo=r", "--model-dir=gs://b/r", "--interval=0"],
     "--interval=0"),
])
def test_bad_arguments_fail_clearly(script, args, message):
  rc, out, err = run(script, *args, "--dry-run")
  assert rc == 2
  assert message in err and commands(out) == []
