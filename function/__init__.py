"""function-ollama-platform: a Crossplane composition function for Ollama on GPUs."""
