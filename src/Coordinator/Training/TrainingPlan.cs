using NameRnn.Model.Data;
using NameRnn.Model.Network;
using NameRnn.Model.Training;

namespace NameRnn.Coordinator.Training;

/// <summary>Everything the coordinator needs for one run, resolved before it starts.</summary>
public sealed record TrainingPlan(
    string RunId,
    TrainingOptions Options,
    ModelConfig Model,
    IReadOnlyList<string> Labels,
    IReadOnlyList<LabelledName> Train,
    IReadOnlyList<LabelledName> Validation,
    IReadOnlyList<LabelledName> Test,
    int MinWorkers,
    int MaxAttemptsPerMicroBatch = 3,
    string ClusterSecret = "")
{
    /// <summary>Where checkpoints go; none are written when null.</summary>
    public string? RunDirectory { get; init; }

    /// <summary>A checkpoint every this many steps; 0 = after every epoch.</summary>
    public int CheckpointEvery { get; init; }

    /// <summary>The checkpoint to continue from, or null for a new run.</summary>
    public Checkpoint? Resume { get; init; }

    /// <summary>How long to wait with no live worker before saving a checkpoint and giving up; zero or less = forever.</summary>
    public TimeSpan WorkerTimeout { get; init; } = TimeSpan.FromSeconds(120);

    /// <summary>How long one assignment may take before its micro-batch is given to another worker too.</summary>
    public TimeSpan AssignmentTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Units of work of one step a worker may hold at once: more than one hides the message round trip behind computation.</summary>
    public int PipelineDepth { get; init; } = 2;

    /// <summary>
    /// The most micro-batches in one unit of work (see <see cref="GradientTree.Units"/>); by default a
    /// step is cut into about one unit per live worker. The result is the same bits for any value.
    /// </summary>
    public int LargestUnit { get; init; } = int.MaxValue;

    /// <summary>
    /// Workers keep replicas of the parameters and optimizer state: each sends its block sum to the step's
    /// other workers too, takes the optimizer step itself, and is handed the next step's work ahead, so a
    /// step costs one message hop instead of two (parameters out, gradients back). The coordinator still
    /// applies every step to its own copy, which is what is evaluated, saved and sent when a worker needs
    /// the state. The result is the same bits either way. Worth it across processes; in one process a
    /// hand-off costs little and the extra optimizer steps (one per worker) cost more for a large model
    /// (GRU 256: 7 % fewer names/s with replicas), so <c>train</c> turns them on in cluster mode only.
    /// </summary>
    public bool Replicas { get; init; } = true;

    /// <summary>
    /// With replicas, how many steps' work goes out ahead of the current step's (at least 1). With one, a
    /// worker that has taken a step from its blocks waits for the coordinator to have taken the step before
    /// and handed out the next; with more, the coordinator's turns leave the workers' path.
    /// </summary>
    public int StepsAhead { get; init; } = 3;

    /// <summary>
    /// With replicas, the most steps handed out to the workers in one message each (a segment; see
    /// <c>TrainingCoordinator.Segments</c>), 0 for a step at a time. With segments the workers take the
    /// steps among themselves and the coordinator hears from them once a segment; it goes back to the state
    /// it committed last when a worker fails. Not with a moving average of the parameters
    /// (<see cref="TrainingOptions.AverageDecay"/>), which the replicas do not keep: such a run hands out a step at a time.
    /// </summary>
    public int SegmentSteps { get; init; }

    /// <summary>What <c>train</c> and <c>bench</c> use in cluster mode.</summary>
    public const int DefaultSegmentSteps = 64;

    /// <summary>Benchmarks only: evaluate on the test split after every epoch and stop once its accuracy reaches this; null = never.</summary>
    public double? StopAtTestAccuracy { get; init; }

    /// <summary>A micro-batch running this many times longer than the median of its step's finished ones is also given to an idle worker.</summary>
    public double StragglerFactor { get; init; } = 4;

    public float[] InitialParameters() => ParameterInit.Create(Model, Options.Seed);
    public float[]? ClassWeights() => TrainingRun.ClassWeights(Train, Model.Classes, Options.ClassWeightPower);
}

/// <summary>Asks the coordinator to run the plan and to answer with <see cref="TrainingCompleted"/> or <see cref="TrainingFailed"/>.</summary>
public sealed record StartTraining
{
    public static readonly StartTraining Instance = new();
    private StartTraining() { }
}

/// <summary>One epoch's figures.</summary>
/// <param name="TrainAccuracy">The share of the epoch's names the training forward passes (with dropout) got right.</param>
public sealed record EpochSummary(
    int Epoch, double TrainLoss, double TrainAccuracy, double ValidationLoss, double ValidationAccuracy, double ValidationMacroF1,
    double LearningRate, double NamesPerSecond, double Seconds, int Workers, double? TestAccuracy = null);

public sealed record TrainingCompleted(
    string RunId,
    float[] FinalParameters,
    float[] BestParameters,
    int BestEpoch,
    IReadOnlyList<EpochSummary> Epochs,
    ClassificationReport BestValidation,
    ClassificationReport Test,
    double TrainSeconds,
    double TrainNamesPerSecond,
    IReadOnlyDictionary<string, int> MicroBatchesPerWorker)
{
    public int WorkersSeen => MicroBatchesPerWorker.Count;
}

public sealed record TrainingFailed(string RunId, string Reason);

/// <summary>The coordinator's own record of a run, saved in every checkpoint.</summary>
public sealed record Bookkeeping(
    int BestEpoch,
    ClassificationReport? BestValidation,
    IReadOnlyList<EpochSummary> Epochs,
    IReadOnlyDictionary<string, int> MicroBatchesPerWorker,
    long TrainedNames,
    double TrainSeconds);
