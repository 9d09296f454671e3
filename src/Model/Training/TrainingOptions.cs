using NameRnn.Model.Network;

namespace NameRnn.Model.Training;

/// <summary>The numerical settings of a training run; every one has a default that trains a good seed model.</summary>
public sealed record TrainingOptions
{
    public int Epochs { get; init; } = 30;
    public int BatchSize { get; init; } = 64;
    /// <summary>
    /// Names per micro-batch, the smallest unit of work, on average: a batch is cut into batch / this
    /// (rounded up) micro-batches, those of the longer names holding fewer of them (<see cref="BalancedCut"/>).
    /// Fixed, whatever the number of workers, so that results do not depend on it.
    /// </summary>
    public int MicroBatch { get; init; } = 32;
    public string Cell { get; init; } = Cells.Rnn;
    public int Hidden { get; init; } = 128;
    /// <summary>Size of a learned letter embedding; 0 = one-hot letters, as in the seed's model.</summary>
    public int Embedding { get; init; }
    /// <summary>A second cell reads each name backwards.</summary>
    public bool Bidirectional { get; init; }
    /// <summary>What the output layer reads (<see cref="Poolings"/>): the last state, or also the mean and maximum of the states over the letters.</summary>
    public string Pooling { get; init; } = Poolings.Last;
    /// <summary>Stacked cells; each layer above the first reads the states of the one below.</summary>
    public int Layers { get; init; } = 1;
    public string Optimizer { get; init; } = Optimizers.Adam;
    public double LearningRate { get; init; } = 2e-3;
    public double Momentum { get; init; } = 0.9;
    public double WeightDecay { get; init; }
    /// <summary>Cosine decay from the learning rate to 0 over the run, or a constant rate.</summary>
    public string Schedule { get; init; } = Schedules.Cosine;
    /// <summary>Largest global L2 norm of the averaged gradient; 0 turns clipping off.</summary>
    public double ClipNorm { get; init; } = 1.0;
    /// <summary>Class weight (largest class size / class size)^power in the loss; 0 weights all classes alike.</summary>
    public double ClassWeightPower { get; init; } = 0.15;
    public long Seed { get; init; } = 1;
    /// <summary>Dropout rate on the input projections and on the last state before the output layer; 0 = none.</summary>
    public double Dropout { get; init; }
    /// <summary>Label smoothing of the loss: the target puts this much probability evenly on all classes; 0 = one-hot targets.</summary>
    public double LabelSmoothing { get; init; }
    /// <summary>Decay of the moving average of the parameters that is evaluated and kept; 0 keeps the raw parameters.</summary>
    public double AverageDecay { get; init; }

    /// <summary>The model these options describe, for a data set of <paramref name="classes"/> languages.</summary>
    public ModelConfig Model(int classes) => ModelConfig.Create(Cell, Hidden, classes, Embedding, Bidirectional, Pooling, Layers);
}

public static class Schedules
{
    public const string Cosine = "cosine";
    public const string Constant = "constant";
    public static readonly IReadOnlyList<string> All = [Cosine, Constant];

    public static double LearningRate(string schedule, double baseRate, long step, long totalSteps) => schedule switch
    {
        Constant => baseRate,
        Cosine => baseRate * 0.5 * (1 + Math.Cos(Math.PI * Math.Min(step, totalSteps) / Math.Max(1, totalSteps))),
        _ => throw new ArgumentException($"unknown schedule '{schedule}': expected one of {string.Join(", ", All)}", nameof(schedule)),
    };
}
