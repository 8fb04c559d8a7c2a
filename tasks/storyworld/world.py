"""The latent semantics of storyworld: attributes, their values and surface phrases.

Every value has one or more surface phrases; every phrase names exactly one
value of one attribute and no phrase occurs inside another, which is what lets
`parse.parse_attributes` map text back to attributes exactly.
"""
import dataclasses

from annotanchor.data.annotations import normalize_value


@dataclasses.dataclass(frozen=True)
class Value:
  """One value of an attribute.

  Attributes:
    name: canonical name ("glass harbor"); its tag value is the name with
      spaces joined by `_`.
    phrases: surface phrases that realize it in text (the first is used where
      a template needs a noun phrase).
  """
  name: str
  phrases: tuple[str, ...]

  @property
  def tag(self) -> str:
    return normalize_value(self.name)


def _values(*specs) -> tuple[Value, ...]:
  return tuple(Value(s, (s,)) if isinstance(s, str) else Value(s[0], tuple(s[1:])) for s in specs)


GENRE = _values("fairy tale", "mystery", "adventure", "ghost story", "fable", "legend",
                "comedy", "romance", "western", "space opera")
TONE = _values(
    ("cheerful", "The sun was warm and everyone was smiling.", "Bright days made every heart light."),
    ("gloomy", "Grey clouds hung low over every roof.", "It rained, and nobody laughed anymore."),
    ("whimsical", "Teapots hummed songs and the chairs danced at night.",
     "Nothing there ever behaved the way it should."),
    ("tense", "Every shadow seemed to hold its breath.", "Each footstep sounded like a warning."),
    ("calm", "The wind was soft and the days passed slowly.", "Time moved there like a lazy river."),
    ("eerie", "Lanterns flickered though there was no wind.", "Whispers came from empty rooms."),
    ("hopeful", "Spring had come at last after a long winter.", "Green buds were opening on every branch."),
    ("melancholy", "Old songs of lost friends filled the evenings.",
     "Letters that nobody answered piled up by the door."),
)
HERO = _values("Mira", "Tomas", "Ada", "Oskar", "Lena", "Bruno", "Ines", "Felix", "Nadia",
               "Kofi", "Yara", "Emil", "Sofia", "Rafael", "Priya", "Hugo", "Zara", "Milo",
               "Astrid", "Dario", "Keiko", "Lars", "Noor", "Pablo")
COMPANION = _values(
    ("loyal dog", "a loyal dog", "a faithful hound"),
    ("talking crow", "a talking crow", "a crow that could speak"),
    ("old sailor", "an old sailor", "a weathered seaman"),
    ("clever fox", "a clever fox", "a sly red fox"),
    ("tiny dragon", "a tiny dragon", "a dragon no bigger than a cat"),
    ("wise owl", "a wise owl", "an owl who knew every star"),
    ("clockwork robot", "a clockwork robot", "a robot made of brass gears"),
    ("young witch", "a young witch", "an apprentice witch"),
    ("gentle giant", "a gentle giant", "a giant with a kind heart"),
    ("stray cat", "a stray cat", "a cat with one torn ear"),
    ("retired knight", "a retired knight", "a knight who had hung up his sword"),
    ("river spirit", "a river spirit", "a spirit of the river"),
)
LOCATION = _values(
    ("glass harbor", "the glass harbor"), ("salt marsh", "the salt marsh"),
    ("mountain village", "a mountain village"), ("desert oasis", "a desert oasis"),
    ("floating city", "the floating city"), ("haunted mill", "the haunted mill"),
    ("frozen north", "the frozen north"), ("busy market town", "a busy market town"),
    ("sunken library", "the sunken library"), ("moon base", "the moon base"),
    ("cedar forest", "the cedar forest"), ("lighthouse island", "a lighthouse island"),
    ("copper mine", "the copper mine"), ("royal palace", "the royal palace"),
    ("river delta", "the river delta"), ("old observatory", "the old observatory"),
)
GOAL = _values(
    ("find a lost key", "find a lost key", "recover a key that had been lost"),
    ("save a sick friend", "save a sick friend", "cure a friend who had fallen ill"),
    ("win a great race", "win a great race", "be first across the line in the great race"),
    ("map the unknown", "map the unknown", "draw a map of lands no one had charted"),
    ("break a curse", "break a curse", "lift an old curse"),
    ("return a stolen crown", "return a stolen crown", "bring back the crown that thieves had taken"),
    ("learn to fly", "learn to fly", "rise into the air like a bird"),
    ("find a new home", "find a new home", "discover a place to live"),
    ("solve a riddle", "solve a riddle", "answer a riddle no one could answer"),
    ("reunite a family", "reunite a family", "bring a scattered family together"),
    ("plant a garden", "plant a garden", "grow a garden where nothing grew"),
    ("deliver a letter", "deliver a letter", "carry a sealed letter to its reader"),
)
OBSTACLE = _values(
    ("fierce storm", "a fierce storm", "a storm that tore at the sky"),
    ("jealous king", "a jealous king", "a king who envied everyone"),
    ("broken bridge", "a broken bridge", "a bridge that had fallen into the gorge"),
    ("hungry wolf", "a hungry wolf", "a wolf with burning eyes"),
    ("tricky riddle keeper", "a tricky riddle keeper", "a keeper of riddles at the gate"),
    ("deep fog", "a deep fog", "a fog so thick it hid the road"),
    ("rival team", "a rival team", "a team of rivals"),
    ("lost map", "a lost map", "a map that blew away in the wind"),
    ("sleeping giant", "a sleeping giant", "a giant asleep across the path"),
    ("greedy merchant", "a greedy merchant", "a merchant who wanted all the gold"),
    ("wild river", "a wild river", "a river that flooded its banks"),
    ("locked gate", "a locked gate", "a gate sealed with seven locks"),
)
ENDING = _values(
    ("happy", "they lived happily ever after", "everyone cheered and danced until morning"),
    ("bittersweet", "they won, but something precious was lost on the way",
     "it was a victory that tasted of tears"),
    ("tragic", "it all ended in ruin and sorrow", "no one ever saw them again"),
    ("surprising", "to everyone's surprise the whole journey had been a test",
     "the last twist was that the stranger had been their friend all along"),
    ("open", "what happened next is still unknown", "the road went on and the story did not end"),
    ("funny", "they laughed so hard that the village laughed with them",
     "it all ended with a pie in the face of the mayor"),
    ("peaceful", "they rested at last in the quiet evening", "everything grew calm and still"),
    ("triumphant", "they returned as heroes to a roaring crowd", "their names were sung in every hall"),
)

# Attribute order is the order of tags in story annotations.
ATTRIBUTES: dict[str, tuple[Value, ...]] = {
    "genre": GENRE, "tone": TONE, "hero": HERO, "companion": COMPANION, "location": LOCATION,
    "goal": GOAL, "obstacle": OBSTACLE, "ending": ENDING,
}


def value_by_tag(attribute: str, tag: str) -> Value:
  """The Value of `attribute` whose tag is `tag`."""
  for value in ATTRIBUTES[attribute]:
    if value.tag == tag:
      return value
  raise KeyError(f"Storyworld has no {attribute} value {tag!r}.")
