"""The GenerationService: a thin gRPC adapter (``servicer``) over a transport-neutral pipeline
(``pipeline``: resolve the model → latents and labels → cached render → store) that takes typed
requests (``requests``); ``service`` wires them with the repository, runner and cache.
"""
