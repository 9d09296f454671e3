using NameRnn.Model.Data;
using NameRnn.Model.Network;

namespace NameRnn.Model.Training;

/// <summary>One micro-batch of the current step: its index within the step and its names.</summary>
public sealed record MicroBatch(int Index, string[] Names, int[] Labels, long NoiseSeed);

/// <summary>
/// Everything a run carries from step to step: its position, the parameters, their moving average
/// and the optimizer state. The epoch order needs no state of its own: it is a function of the
/// seed and the epoch.
/// </summary>
public sealed record RunState(int Epoch, int StepInEpoch, long Step, float[] Parameters, float[]? Average, OptimizerState Optimizer);

/// <summary>What one optimizer step did.</summary>
public sealed record StepOutcome(long Step, int Epoch, double Loss, double LearningRate, double GradientNorm, int Names, bool EpochEnded, int Correct = 0);

/// <summary>
/// The synchronous data-parallel protocol without any actor: the epoch order (a seeded shuffle),
/// global batches cut into micro-batches by the names' lengths (<see cref="BalancedCut"/>), the micro-batch gradient sums added in
/// micro-batch order and divided by the batch size, clipping, the schedule and the optimizer on
/// the master copy of the parameters. The coordinator actor drives it; so can a plain loop.
/// </summary>
public sealed class TrainingRun
{
    private readonly TrainingOptions _options;
    private readonly IReadOnlyList<LabelledName> _train;
    private readonly IOptimizer _optimizer;
    private int[] _order;
    private int[]? _nextOrder;
    private readonly float[]? _average;

    public TrainingRun(TrainingOptions options, ModelConfig config, IReadOnlyList<LabelledName> train, float[] initialParameters)
        : this(options, config, train, new RunState(0, 0, 0, initialParameters,
            options.AverageDecay > 0 ? initialParameters : null, new OptimizerState(options.Optimizer, 0, [])), fresh: true)
    {
    }

    /// <summary>Continues a run from a state captured by <see cref="Capture"/>; it goes on exactly as the original would have.</summary>
    public TrainingRun(TrainingOptions options, ModelConfig config, IReadOnlyList<LabelledName> train, RunState state)
        : this(options, config, train, state, fresh: false)
    {
    }

    private TrainingRun(TrainingOptions options, ModelConfig config, IReadOnlyList<LabelledName> train, RunState state, bool fresh)
    {
        if (train.Count == 0) throw new ArgumentException("the training split is empty", nameof(train));
        if (state.Parameters.Length != config.ParameterCount)
            throw new ArgumentException($"{state.Parameters.Length} parameters for a model of {config.ParameterCount}");
        _options = options;
        _train = train;
        Config = config;
        Parameters = (float[])state.Parameters.Clone();
        _average = options.AverageDecay > 0 ? (float[])(state.Average ?? state.Parameters).Clone() : null;
        _optimizer = Optimizers.Create(options.Optimizer, config.ParameterCount, options.Momentum, options.WeightDecay, fresh ? null : state.Optimizer);
        StepsPerEpoch = (train.Count + options.BatchSize - 1) / options.BatchSize;
        if (state.StepInEpoch < 0 || state.StepInEpoch >= StepsPerEpoch || state.Epoch < 0)
            throw new ArgumentException($"position epoch {state.Epoch}, step {state.StepInEpoch} does not fit {StepsPerEpoch} steps per epoch");
        (Epoch, StepInEpoch, Step) = (state.Epoch, state.StepInEpoch, state.Step);
        _order = SplitMix64.EpochPermutation(train.Count, options.Seed, Epoch);
    }

    /// <summary>The run's whole state between two steps.</summary>
    public RunState Capture() => new(Epoch, StepInEpoch, Step, Parameters, _average is null ? null : (float[])_average.Clone(), _optimizer.State);

    public ModelConfig Config { get; }
    public TrainingOptions Options => _options;
    public int StepsPerEpoch { get; }
    public long TotalSteps => (long)StepsPerEpoch * _options.Epochs;
    public int Epoch { get; private set; }
    public int StepInEpoch { get; private set; }
    public long Step { get; private set; }
    public bool Finished => Epoch >= _options.Epochs;

    /// <summary>The current parameters; a new array after every step, never changed once handed out.</summary>
    public float[] Parameters { get; private set; }

    /// <summary>
    /// The parameters to evaluate and keep: an exponential moving average of the parameters over the
    /// steps (Polyak averaging) when <see cref="TrainingOptions.AverageDecay"/> is set, else the
    /// parameters themselves. A new array after every step.
    /// </summary>
    public float[] ModelParameters => _average is null ? Parameters : (float[])_average.Clone();

    /// <summary>The parameters' version: the number of steps applied.</summary>
    public long ParametersVersion => Step;

    /// <summary>The learning rate of the current step, from the schedule.</summary>
    public double LearningRate => LearningRateOf(Step);

    /// <summary>The learning rate of any step of the run, from the schedule.</summary>
    public double LearningRateOf(long step) => Schedules.LearningRate(_options.Schedule, _options.LearningRate, step, TotalSteps);

    /// <summary>The optimizer's state now, for a worker that steps a replica of the parameters (see <see cref="ParameterReplica"/>).</summary>
    public OptimizerState OptimizerState => _optimizer.State;

    /// <summary>A step's positions in its epoch's order: [Start, End).</summary>
    private (int Start, int End) StepRange(int stepInEpoch) => (stepInEpoch * _options.BatchSize, Math.Min((stepInEpoch + 1) * _options.BatchSize, _train.Count));

    /// <summary>How many micro-batches the current step has (the last step of an epoch may have fewer).</summary>
    public int MicroBatchCount
    {
        get
        {
            var (start, end) = StepRange(StepInEpoch);
            return (end - start + _options.MicroBatch - 1) / _options.MicroBatch;
        }
    }

    /// <summary>Whether the run has a step after the current one.</summary>
    public bool HasNextStep => Step + 1 < TotalSteps;

    public IReadOnlyList<MicroBatch> MicroBatches() => MicroBatchesOf(Step);

    /// <summary>
    /// The micro-batches of the current step or of one after it, so that later steps' work can be handed
    /// out before this one is applied (it does not depend on the parameters): the batch's names cut into
    /// ⌈batch / <see cref="TrainingOptions.MicroBatch"/>⌉ micro-batches by their lengths (<see cref="BalancedCut"/>).
    /// </summary>
    public IReadOnlyList<MicroBatch> MicroBatchesOf(long step)
    {
        if (Finished) throw new InvalidOperationException("the run has finished");
        if (step < Step || step >= TotalSteps)
            throw new ArgumentOutOfRangeException(nameof(step), step, $"only the steps from the current one ({Step}) to the last ({TotalSteps - 1}) have micro-batches");
        var ahead = StepInEpoch + (step - Step);
        var epochsAhead = ahead / StepsPerEpoch;
        var stepInEpoch = (int)(ahead % StepsPerEpoch);
        var order = epochsAhead switch
        {
            0 => _order,
            1 => _nextOrder ??= SplitMix64.EpochPermutation(_train.Count, _options.Seed, Epoch + 1),
            _ => SplitMix64.EpochPermutation(_train.Count, _options.Seed, Epoch + (int)epochsAhead),
        };
        var (start, end) = StepRange(stepInEpoch);
        var batch = Enumerable.Range(start, end - start).Select(i => _train[order[i]]).ToArray();
        var count = (batch.Length + _options.MicroBatch - 1) / _options.MicroBatch;
        return BalancedCut.Cut(batch.Select(p => p.Name.Length).ToArray(), count, BalancedCut.LetterStepCost(Config.Hidden)).Select((rows, m) => new MicroBatch(m, rows.Select(r => batch[r].Name).ToArray(), rows.Select(r => batch[r].Label).ToArray(), NoiseSeed(step, m))).ToList();
    }

    /// <summary>The seed of the dropout masks of micro-batch <paramref name="index"/> of a step: the same whoever computes it.</summary>
    private long NoiseSeed(long step, int index) =>
        (long)new SplitMix64(unchecked((ulong)_options.Seed * 0xA24BAED4963EE407UL ^ (ulong)step * 0x9FB21C651E98DF25UL ^ (ulong)index)).NextUInt64();

    /// <summary>Adds the current step's micro-batch sums (given in micro-batch order) and takes one optimizer step.</summary>
    public StepOutcome Apply(IReadOnlyList<MicroBatchGradients> inMicroBatchOrder) =>
        Apply(inMicroBatchOrder.Select((g, i) => new GradientBlock(i, 1, g)).ToList());

    /// <summary>
    /// Adds the sums of blocks of the current step's micro-batches in the order of <see cref="GradientTree"/>,
    /// averages over the batch and takes one optimizer step.
    /// </summary>
    public StepOutcome Apply(IReadOnlyList<GradientBlock> blocks)
    {
        var learningRate = LearningRate;
        var (next, step) = StepUpdate.Apply(Parameters, _optimizer, blocks, MicroBatchCount, _options.ClipNorm, learningRate);
        Parameters = next;
        if (_average is not null)
        {
            var decay = (float)Math.Min(_options.AverageDecay, (1.0 + Step) / (10.0 + Step));
            for (var i = 0; i < next.Length; i++) _average[i] = decay * _average[i] + (1 - decay) * next[i];
        }
        var (lossSum, count, norm, correct) = step;
        var outcome = new StepOutcome(Step, Epoch, lossSum / count, learningRate, norm, count, StepInEpoch + 1 == StepsPerEpoch, correct);
        Step++;
        StepInEpoch++;
        if (StepInEpoch == StepsPerEpoch)
        {
            StepInEpoch = 0;
            Epoch++;
            if (!Finished) _order = _nextOrder ?? SplitMix64.EpochPermutation(_train.Count, _options.Seed, Epoch);
            _nextOrder = null;
        }
        return outcome;
    }

    /// <summary>Loss weights per class from the training split's class sizes: (largest / size)^power.</summary>
    public static float[]? ClassWeights(IReadOnlyList<LabelledName> train, int classes, double power)
    {
        if (power == 0) return null;
        var counts = new int[classes];
        foreach (var pair in train) counts[pair.Label]++;
        var largest = counts.Max();
        return counts.Select(c => c == 0 ? 0f : (float)Math.Pow((double)largest / c, power)).ToArray();
    }
}
