"""The TrainingService: training jobs over gRPC (servicer, job manager, store, runner, publish)."""
