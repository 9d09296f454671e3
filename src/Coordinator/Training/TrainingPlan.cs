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
public sealed record EpochSummary(
    int Epoch, double TrainLoss, double ValidationLoss, double ValidationAccuracy, double ValidationMacroF1,
    double LearningRate, double NamesPerSecond, double Seconds, int Workers);

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
