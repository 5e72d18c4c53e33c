"""Small torch modules on one save / load convention (`HubModule`: huggingface_hub's `PyTorchModelHubMixin`)."""
