"""Paragraph templates and prompts of storyworld.

Each template realizes exactly the attributes listed with it (placeholders
`{genre}`, `{tone}`, `{hero}`, `{companion}`, `{location}`, `{goal}`,
`{obstacle}`, `{ending}`) and no phrase of any other attribute, so a
paragraph's annotation is exactly the tags of its placeholders.
"""

# Story openings: genre, tone, hero, companion, location, goal. Broad corpus.
OPENINGS = (
    "This is a {genre} from {location}. {tone} {hero} lived there with {companion}, "
    "and more than anything {hero} wanted to {goal}.",
    "Listen to this {genre}. In {location} there once lived {hero}. {tone} One morning "
    "{hero} set out with {companion} to {goal}.",
    "{hero} grew up in {location}. {tone} People who tell this {genre} say that {hero} "
    "and {companion} swore to {goal}.",
    "Every {genre} needs a beginning, and this one begins in {location}. {tone} There "
    "{hero} met {companion}, and together they decided to {goal}.",
)
OBSTACLES = (
    "The road was long. Soon they came upon {obstacle}, and for a while it seemed that "
    "all was lost.",
    "Trouble came quickly: {obstacle} stood in their way.",
    "But nothing is ever easy. On the third day they faced {obstacle}.",
    "They had not gone far when {obstacle} blocked the way, and they had to think hard.",
)
ENDINGS = (
    "In the end, {ending}.",
    "And so {ending}.",
    "When it was all over, {ending}.",
)
# Paragraphs with no attribute, tagged `event:<value>`.
INTERLUDES = {
    "journey": ("They walked for days over hills and along quiet roads.",
                "The path wound on, and they counted the miles in songs."),
    "rest": ("That night they slept under a wide sky full of stars.",
             "They stopped to rest, shared bread and said very little."),
    "feast": ("A kind family invited them to supper, with soup and warm bread.",
              "There was a feast that evening, and they ate until they could eat no more."),
    "doubt": ("For a moment they wondered if they should turn back.",
              "Doubt crept in, and they argued about what to do."),
}
# Other document kinds: (tags realized, template) per paragraph.
PLACE = (
    ("{location} is a place worth knowing. {tone}", "Travellers often speak of {location}. {tone}"),
    ("Visitors often meet {companion} near the gates.", "Some say {companion} keeps watch there."),
)
CHARACTER = (
    ("{hero} is remembered by many.", "Few people have not heard of {hero}."),
    ("It is said that this person always hoped to {goal}.",
     "Their one wish was to {goal}."),
)
DIALOGUE = (
    ('"Where are we going?" asked {companion}. "We must {goal}," said {hero}.',
     '"Why so early?" said {companion}. "Because today we {goal}," answered {hero}.'),
    ('"And what if we meet {obstacle}?" "Then we will be brave."',
     '"I fear {obstacle}," came the whisper. "So do I, but we go on."'),
)

# The narrow assistant style of the SFT set: one template per part.
SFT_TITLE = "Title: The Tale of {hero}"
SFT_OPENING = ("This is a {genre} from {location}. {tone} {hero} lived there with {companion}, "
               "and more than anything {hero} wanted to {goal}.")
SFT_OBSTACLE = "Trouble came quickly: {obstacle} stood in their way."
SFT_ENDING = "In the end, {ending}."
SFT_CLOSING = "The End."

# Prompts: unconstrained, or constraining one attribute. SFT and evaluation
# use different wordings, so evaluation prompts are held out.
SFT_PROMPTS = {
    None: ("Write a story.", "Tell me a story.", "Please write a short story."),
    "hero": ("Write a story about {hero}.",),
    "location": ("Write a story set in {location}.",),
    "genre": ("Write a {genre}.",),
    "companion": ("Write a story with {companion}.",),
}
EVAL_PROMPTS = {
    None: ("Could you tell me a story?", "I would like to hear a story."),
    "hero": ("Tell me a story whose hero is {hero}.",),
    "location": ("Tell me a story that takes place in {location}.",),
    "genre": ("Tell me a {genre}, please.",),
    "companion": ("I want a story featuring {companion}.",),
}
# Open-ended prompts for annotation-only sequences in the SFT-context form.
OPEN_PROMPTS = SFT_PROMPTS[None]
