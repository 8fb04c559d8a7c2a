"""A quality function for the preference experiment at tiny sizes, where no sample of the
tiny models passes storyworld's checker (0 of 68 measured) and `pair` would refuse: a sample
passes when its response has an even number of characters, about half of them, so every
prompt of K samples likely has a pair and every step of the experiment runs."""


def even_length(prompt: str, response: str) -> float:
  del prompt
  return float(len(response) % 2 == 0)
