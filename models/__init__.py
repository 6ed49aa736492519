"""Models: loading every backbone kind (Hub id, folder, .gguf, the embedded SmolLM2), weight
fingerprints, generation and option reading, and the precision policy."""
