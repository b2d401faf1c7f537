"""The word lists of the supplement's Algorithm 1 (light: odin.config imports them for the schema defaults)."""

LIVING_WORDS = ["animate", "animal", "plant", "living", "creature", "organism"]
NONLIVING_WORDS = ["inanimate", "object", "man-made", "artifact", "thing", "tool"]
LIVING_MODIFIERS = ["young", "old", "female", "male", "sleeping", "sick", "small", "large", "wet", "running"]
NONLIVING_MODIFIERS = ["broken", "new", "old", "red", "wooden", "small", "large", "dirty", "shiny", "metal"]
