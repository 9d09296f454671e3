using NameRnn.Coordinator.Training;
using NameRnn.Worker;
using NameRnn.Worker.Hosting;
using NameRnn.Model.Network;
using NameRnn.Model.Training;

namespace NameRnn.Coordinator.Cli;

/// <summary>Options every command has.</summary>
public abstract class CommandSettings
{
    [Option("--verbose", "print stack traces of errors and debug logs", Value = "")]
    public bool Verbose { get; set; }

    [Option("--help", "show this help", Value = "")]
    public bool Help { get; set; }

    public virtual void Validate() { }
}

/// <summary>Where the data comes from, shared by the commands that read it.</summary>
public abstract class DataSettings : CommandSettings
{
    [Option("--data", "folder of <Language>.txt files, or the tutorial's data.zip (default: data/names, data/data.zip, else download)", Value = "PATH")]
    public string? Data { get; set; }

    [Option("--data-dir", "where the default data lives and downloads go", Value = "DIR")]
    public string DataDir { get; set; } = "data";

    [Option("--data-url", "the archive to download when no data is found", Value = "URL")]
    public string DataUrl { get; set; } = DataLocator.OfficialUrl;
}

/// <summary>
/// The defaults that depend on the cell, chosen on the validation split: the seed's Elman RNN with
/// one-hot letters and light regularisation; gated cells with a letter embedding, both reading
/// directions, the output layer on the last state and the mean and maximum over the letters,
/// more dropout, label smoothing and a moving average of the parameters.
/// </summary>
public sealed record CellDefaults(
    int Embedding, bool Bidirectional, double Dropout, double ClassWeightPower, double AverageDecay, string Pooling, double LabelSmoothing)
{
    private static readonly CellDefaults Elman = new(0, false, 0.1, 0.15, 0, Poolings.Last, 0);
    private static readonly CellDefaults Gated = new(64, true, 0.5, 0.1, 0.999, Poolings.LastMeanMax, 0.1);

    public static CellDefaults For(string cell) => cell == Cells.Rnn ? Elman : Gated;
}

public sealed class TrainSettings : DataSettings
{
    private static readonly TrainingOptions Defaults = new();

    [Option("--out", "the run folder, used exactly as given (default: a new folder under --runs-dir)", Value = "DIR")]
    public string? Out { get; set; }

    [Option("--runs-dir", "where new run folders are made, as RUNS/yyyyMMdd-HHmmss-NAME", Value = "DIR")]
    public string RunsDir { get; set; } = "runs";

    [Option("--name", "the name part of a new run folder (default: cell and hidden size, e.g. rnn128)", Value = "NAME")]
    public string? Name { get; set; }

    [Option("--log-level", "verbose, debug, information, warning or error", Value = "LEVEL")]
    public string LogLevel { get; set; } = "information";

    [Option("--workers", "worker actors in this process (default: processor count)", Value = "N")]
    public int Workers { get; set; } = Environment.ProcessorCount;

    [Option("--epochs", "passes over the training split", Value = "N")]
    public int Epochs { get; set; } = Defaults.Epochs;

    [Option("--batch-size", "names per optimizer step (global batch)", Value = "N")]
    public int BatchSize { get; set; } = Defaults.BatchSize;

    [Option("--micro-batch", "names per micro-batch on average, the smallest piece of work: a batch is cut into batch-size / N of them (rounded up), by the names' lengths so that each costs about the same; their gradient sums are added in a fixed order, so the result does not depend on the worker count", Value = "N")]
    public int MicroBatch { get; set; } = Defaults.MicroBatch;

    [Option("--hidden", "hidden state size", Value = "N")]
    public int Hidden { get; set; } = Defaults.Hidden;

    [Option("--embedding", "size of a learned letter embedding before the cell; 0 = one-hot letters (default: 0 for rnn, 64 for gru and lstm)", Value = "N")]
    public int? Embedding { get; set; }

    [Option("--bidirectional", "a second cell reads each name backwards (default: off for rnn, on for gru and lstm; --bidirectional=false turns it off)", Value = "")]
    public bool? Bidirectional { get; set; }

    [Option("--pooling", "what the output layer reads of each direction: last (the state after the last letter) or last-mean-max (that, and the mean and maximum of the states over the letters) (default: last for rnn, last-mean-max for gru and lstm)", Value = "NAME")]
    public string? Pooling { get; set; }

    [Option("--layers", "stacked cells; a layer above the first reads the states of the one below, with dropout between", Value = "N")]
    public int Layers { get; set; } = Defaults.Layers;

    [Option("--cell", "rnn (the seed's Elman RNN), gru or lstm", Value = "CELL")]
    public string Cell { get; set; } = Defaults.Cell;

    [Option("--optimizer", "adam or sgd (with momentum)", Value = "NAME")]
    public string Optimizer { get; set; } = Defaults.Optimizer;

    [Option("--lr", "learning rate (default: 0.002 for adam, 0.1 for sgd)", Value = "X")]
    public double? Lr { get; set; }

    [Option("--momentum", "SGD momentum", Value = "X")]
    public double Momentum { get; set; } = Defaults.Momentum;

    [Option("--weight-decay", "weight decay: decoupled (AdamW) with adam, an L2 term in the gradient with sgd", Value = "X")]
    public double WeightDecay { get; set; } = Defaults.WeightDecay;

    [Option("--schedule", "cosine (decay to 0 over the run) or constant", Value = "NAME")]
    public string Schedule { get; set; } = Defaults.Schedule;

    [Option("--clip-norm", "largest L2 norm of the averaged gradient; 0 = no clipping", Value = "X")]
    public double ClipNorm { get; set; } = Defaults.ClipNorm;

    [Option("--class-weight-power", "loss weight (largest class / class size)^X; 0 = unweighted (default: 0.15 for rnn, 0.1 for gru and lstm)", Value = "X")]
    public double? ClassWeightPower { get; set; }

    [Option("--seed", "seed of the initial weights and the epoch order", Value = "N")]
    public long Seed { get; set; } = Defaults.Seed;

    [Option("--dropout", "dropout rate on the letter inputs, between stacked layers and on what the output layer reads (default: 0.1 for rnn, 0.5 for gru and lstm)", Value = "X")]
    public double? Dropout { get; set; }

    [Option("--label-smoothing", "probability the loss's target spreads evenly over all classes; 0 = one-hot targets (default: 0 for rnn, 0.1 for gru and lstm)", Value = "X")]
    public double? LabelSmoothing { get; set; }

    [Option("--average-decay", "evaluate and keep a moving average of the parameters with this decay; 0 = the raw parameters (default: 0 for rnn, 0.999 for gru and lstm)", Value = "X")]
    public double? AverageDecay { get; set; }

    [Option("--cluster", "train across an Akka.NET cluster: this node is the coordinator, workers join it", Value = "")]
    public bool Cluster { get; set; }

    [Option("--hostname", "cluster mode: the address this node listens on and workers reach it at", Value = "HOST")]
    public string Hostname { get; set; } = "127.0.0.1";

    [Option("--public-hostname", "cluster mode: the name workers reach this node by, when it is not --hostname (e.g. bind 0.0.0.0 in a container)", Value = "HOST")]
    public string? PublicHostname { get; set; }

    [Option("--port", "cluster mode: the TCP port this node listens on; 0 = any free port", Value = "P")]
    public int Port { get; set; } = 4053;

    [Option("--min-workers", "cluster mode: registered workers to wait for before training starts", Value = "N")]
    public int MinWorkers { get; set; } = 1;

    [Option("--seed-node", "cluster mode: seed node addresses, comma-separated (default: this node is its own seed)", Value = "ADDRESS")]
    public string? SeedNode { get; set; }

    [Option("--max-frame-size", "cluster mode: largest remote message in bytes; the same on every node", Value = "BYTES")]
    public int MaxFrameSize { get; set; } = NameRnnHosting.DefaultMaxFrameSize;

    [Option("--cluster-secret", "cluster mode: a secret every worker must present when it registers (default: none)", Value = "TEXT")]
    [System.Text.Json.Serialization.JsonIgnore]
    public string ClusterSecret { get; set; } = "";

    [Option("--address-file", "cluster mode: write this node's cluster address to the file once it listens", Value = "PATH")]
    public string? AddressFile { get; set; }

    [Option("--resume", "continue the run in DIR from its newest good checkpoint with its saved options; how it runs (--workers, --cluster, ...) is given anew", Value = "DIR")]
    public string? Resume { get; set; }

    [Option("--checkpoint-every", "write a checkpoint every N steps; 0 = after every epoch", Value = "N")]
    public int CheckpointEvery { get; set; }

    [Option("--worker-timeout", "seconds to wait with no live worker before saving a checkpoint and giving up; 0 = forever", Value = "S")]
    public double WorkerTimeout { get; set; } = 120;

    [Option("--assignment-timeout", "seconds a unit of work (a block of micro-batches) may take on one worker before it goes to another", Value = "S")]
    public double AssignmentTimeout { get; set; } = 60;

    [Option("--max-attempts", "failures of one unit of work (exceptions, non-finite gradients) that stop the run", Value = "K")]
    public int MaxAttempts { get; set; } = 3;

    [Option("--replicas", "auto, on or off: workers keep replicas of the parameters and optimizer state and take each step themselves from each other's gradients (one message hop per step instead of two; the same result); auto = on in cluster mode, off in local mode", Value = "MODE")]
    public string Replicas { get; set; } = "auto";

    /// <summary>Whether the workers keep replicas, with "auto" resolved for the mode.</summary>
    public bool UseReplicas => Replicas == "on" || (Replicas == "auto" && Cluster);

    [Option("--segment-steps", "with replicas, the most steps of work a worker gets in one message (a segment): the workers then take those steps among themselves, without the coordinator, which hears from each once a segment and goes back to the last state it holds when one fails (the same result); 0 = a step at a time; default 64 in cluster mode, 0 in local mode; not with --average-decay", Value = "N")]
    public int? SegmentSteps { get; set; }

    /// <summary>The steps per segment, with the default resolved for the mode; 0 without replicas. (A run with a moving average of the parameters, which the replicas do not keep, hands out a step at a time whatever this says: see <see cref="TrainingPlan.SegmentSteps"/>.)</summary>
    public int UseSegmentSteps => !UseReplicas ? 0 : SegmentSteps ?? (Cluster ? TrainingPlan.DefaultSegmentSteps : 0);

    [OptionGroup]
    public TlsSettings Tls { get; set; } = new();

    [Option("--test-slow-ms", "local worker 1 answers this much later per micro-batch (a straggler)", Hidden = true)]
    public int TestSlowMs { get; set; }

    [Option("--test-fail-at", "local worker 1 throws once on STEP:MICROBATCH", Hidden = true)]
    public string? TestFailAt { get; set; }

    [Option("--max-names", "keep only this many training names (a deterministic subset); 0 = all", Value = "N")]
    public int MaxNames { get; set; }

    /// <summary>Options that may differ when a run is resumed: how it runs, not what it computes.</summary>
    public static readonly IReadOnlySet<string> ModeOptions = new HashSet<string>
    {
        "--resume", "--workers", "--cluster", "--hostname", "--public-hostname", "--port", "--min-workers", "--seed-node",
        "--max-frame-size", "--cluster-secret", "--address-file", "--data", "--data-dir", "--data-url", "--worker-timeout",
        "--assignment-timeout", "--max-attempts", "--replicas", "--verbose", "--test-slow-ms", "--test-fail-at", "--tls-certificate",
        "--tls-password", "--tls-insecure", "--public-hostname", "--log-level",
    };

    /// <summary>Mode options that a resumed run keeps from its first start unless given again.</summary>
    public static readonly IReadOnlySet<string> DataOptions = new HashSet<string> { "--data", "--data-dir", "--data-url" };

    public override void Validate()
    {
        _ = NodeLogging.Parse(LogLevel);
        if (Name is { } name && (name.Length == 0 || name.IndexOfAny(Path.GetInvalidFileNameChars()) >= 0 || name.Contains('/')))
            throw new UsageException($"option --name: '{name}' cannot be part of a folder name");
        CommandLine.Range("--workers", Workers, 1, 256);
        CommandLine.Range("--epochs", Epochs, 1, 100_000);
        CommandLine.Range("--batch-size", BatchSize, 1, 1 << 20);
        CommandLine.Range("--micro-batch", MicroBatch, 1, 1 << 20);
        CommandLine.Range("--hidden", Hidden, 1, 4096);
        if (Embedding is { } embedding) CommandLine.Range("--embedding", embedding, 0, 4096);
        CommandLine.OneOf("--cell", Cell, Cells.All);
        if (Pooling is { } pooling) CommandLine.OneOf("--pooling", pooling, Poolings.All);
        CommandLine.Range("--layers", Layers, 1, 16);
        CommandLine.OneOf("--optimizer", Optimizer, Optimizers.All);
        if (Lr is { } lr) CommandLine.Range("--lr", lr, 1e-12, 100);
        CommandLine.Range("--momentum", Momentum, 0, 0.999999);
        CommandLine.Range("--weight-decay", WeightDecay, 0, 10);
        CommandLine.OneOf("--schedule", Schedule, Schedules.All);
        CommandLine.Range("--clip-norm", ClipNorm, 0, 1e6);
        if (ClassWeightPower is { } power) CommandLine.Range("--class-weight-power", power, 0, 4);
        CommandLine.Range("--max-names", MaxNames, 0, int.MaxValue);
        if (AverageDecay is { } decay) CommandLine.Range("--average-decay", decay, 0, 0.999999);
        if (Dropout is { } dropout) CommandLine.Range("--dropout", dropout, 0, 0.95);
        if (LabelSmoothing is { } smoothing) CommandLine.Range("--label-smoothing", smoothing, 0, 0.9);
        CommandLine.Range("--port", Port, 0, 65535);
        CommandLine.Range("--checkpoint-every", CheckpointEvery, 0, int.MaxValue);
        CommandLine.Range("--worker-timeout", WorkerTimeout, 0, 1e7);
        CommandLine.Range("--assignment-timeout", AssignmentTimeout, 0.1, 1e7);
        CommandLine.Range("--max-attempts", MaxAttempts, 1, 1000);
        _ = WorkerFaults.ParseFailAt(TestFailAt);
        if (Cluster) Tls.Options()?.Load().Dispose();
        CommandLine.Range("--min-workers", MinWorkers, 1, 4096);
        CommandLine.Range("--max-frame-size", MaxFrameSize, 128_000, 1 << 30);
        CommandLine.OneOf("--replicas", Replicas, ["auto", "on", "off"]);
        if (SegmentSteps is { } segmentSteps)
        {
            CommandLine.Range("--segment-steps", segmentSteps, 0, NameRnn.Contracts.Protocol.MaxSegmentSteps);
            if (segmentSteps > 0 && !UseReplicas)
                throw new UsageException("option --segment-steps: segments need replicas; add --replicas on (local mode) or leave --replicas at auto (cluster mode)");
            if (segmentSteps > 0 && AverageDecay is > 0)
                throw new UsageException("option --segment-steps: segments do not keep a moving average of the parameters; use --average-decay 0 or --segment-steps 0");
        }
        // One message carries the parameters and a unit of work: up to a whole step's names (when one worker is left).
        var needed = NameRnnHosting.RequiredFrameSize(ToTrainingOptions().Model(18).ParameterCount, Math.Max(BatchSize, 1));
        if (Cluster && needed > MaxFrameSize)
            throw new UsageException($"option --max-frame-size: {MaxFrameSize} bytes is too small for a {Cell} model of hidden size {Hidden} at batch size {BatchSize}: its messages need {needed}; set --max-frame-size (on the coordinator and every worker) to at least {needed}");
    }

    public IReadOnlyList<string> SeedNodes =>
        (SeedNode ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    public TrainingOptions ToTrainingOptions() => ToTrainingOptions(CellDefaults.For(Cell));

    private TrainingOptions ToTrainingOptions(CellDefaults cell) => new()
    {
        Epochs = Epochs,
        BatchSize = BatchSize,
        MicroBatch = MicroBatch,
        Cell = Cell,
        Hidden = Hidden,
        Embedding = Embedding ?? cell.Embedding,
        Bidirectional = Bidirectional ?? cell.Bidirectional,
        Pooling = Pooling ?? cell.Pooling,
        Layers = Layers,
        Optimizer = Optimizer,
        LearningRate = Lr ?? (Optimizer == Optimizers.Sgd ? 0.1 : Defaults.LearningRate),
        Momentum = Momentum,
        WeightDecay = WeightDecay,
        Schedule = Schedule,
        ClipNorm = ClipNorm,
        ClassWeightPower = ClassWeightPower ?? cell.ClassWeightPower,
        Seed = Seed,
        AverageDecay = AverageDecay ?? cell.AverageDecay,
        Dropout = Dropout ?? cell.Dropout,
        LabelSmoothing = LabelSmoothing ?? cell.LabelSmoothing,
    };
}

public sealed class PredictSettings : CommandSettings
{
    [Option("--model", "folder of a trained model (a train --out folder)", Value = "DIR")]
    public string? Model { get; set; }

    [Option("--top", "languages to show per name", Value = "K")]
    public int Top { get; set; } = 3;

    [Option("--json", "print JSON instead of text", Value = "")]
    public bool Json { get; set; }

    public override void Validate()
    {
        if (string.IsNullOrWhiteSpace(Model)) throw new UsageException("option --model: required: the folder of a trained model");
        CommandLine.Range("--top", Top, 1, 1000);
    }
}

public sealed class EvaluateSettings : DataSettings
{
    [Option("--model", "folder of a trained model (a train --out folder)", Value = "DIR")]
    public string? Model { get; set; }

    [Option("--split", "test, validation or train", Value = "NAME")]
    public string Split { get; set; } = "test";

    [Option("--json", "print JSON instead of text", Value = "")]
    public bool Json { get; set; }

    public static readonly IReadOnlyList<string> Splits = ["test", "validation", "train"];

    public override void Validate()
    {
        if (string.IsNullOrWhiteSpace(Model)) throw new UsageException("option --model: required: the folder of a trained model");
        CommandLine.OneOf("--split", Split, Splits);
    }
}

public sealed class FetchSettings : CommandSettings
{
    [Option("--data-dir", "the folder data.zip is saved to", Value = "DIR")]
    public string DataDir { get; set; } = "data";

    [Option("--data-url", "the archive to download", Value = "URL")]
    public string DataUrl { get; set; } = DataLocator.OfficialUrl;
}
