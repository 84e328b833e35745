"""The scenario language: parse (:mod:`.parse`), run on the model (:mod:`.run`)."""
