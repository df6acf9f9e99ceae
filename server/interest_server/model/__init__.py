"""Models: the text encoder, concept extraction and grounding, interest functions."""
