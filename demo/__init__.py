"""The embedded demo: the easy-VQA pool, stand-in annotations and the reward models trained on
them. Only the top layers (evaluate, publish, the command line) import it."""
