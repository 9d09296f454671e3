// TorchSharp's thread count is process-wide and the machine has two cores: tests run one at a time.
[assembly: Xunit.CollectionBehavior(DisableTestParallelization = true)]
