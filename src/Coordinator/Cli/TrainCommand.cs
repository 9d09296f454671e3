using NameRnn.Worker.Hosting;
using System.Diagnostics;
using System.Text.Json;
using NameRnn.Coordinator.Training;
using NameRnn.Model.Data;
using NameRnn.Model.Network;
using NameRnn.Model.Training;
using NameRnn.Coordinator.Runs;
using Serilog;
using Serilog.Events;
using System.Globalization;
using TorchSharp;

namespace NameRnn.Coordinator.Cli;

/// <summary><c>train</c>: reads the data, trains with the actor protocol, writes the model and summary.json.</summary>
public static class TrainCommand
{
    /// <summary>What a run folder's config.json holds: enough to understand the run, and to resume it.</summary>
    public sealed record RunConfig(
        string RunId, DateTime Created, TrainSettings Settings, TrainingOptions Options, string? DataPath, string? DataSha256,
        int? TrainNames, int? ValidationNames, int? TestNames, IReadOnlyDictionary<string, string> Versions, string? GitCommit);

    public static async Task<int> RunAsync(TrainSettings given, IReadOnlySet<string> givenOptions, TextWriter stdout, TextWriter stderr,
        ILogger consoleLog, CancellationToken cancellation)
    {
        var wall = Stopwatch.StartNew();
        var (settings, previous, checkpoint) = given.Resume is { } resumeDir
            ? Resume(given, givenOptions, resumeDir, consoleLog)
            : (given, null, null);
        var options = settings.ToTrainingOptions();
        var runId = previous?.RunId ?? $"{DateTime.UtcNow:yyyyMMdd-HHmmss}-{Guid.NewGuid().ToString("N")[..6]}";
        var outDir = RunFolder.Resolve(settings.Out, settings.RunsDir, settings.Name ?? $"{options.Cell}{options.Hidden}", DateTime.Now);
        settings.Out = outDir;
        Directory.CreateDirectory(outDir);

        var bar = ReferenceEquals(stderr, Console.Error) && !Console.IsErrorRedirected ? new ProgressLine(stderr) : null;
        using var rootLog = NodeLogging.Create(stderr, settings.Verbose ? LogEventLevel.Debug : NodeLogging.Parse(settings.LogLevel),
            NameRnn.Worker.Hosting.NameRnnHosting.CoordinatorRole, Environment.MachineName, Path.Combine(outDir, RunFolder.LogFile), progress: bar);
        var runLog = rootLog.ForContext("RunId", runId);
        var previousLogger = Log.Logger;
        Log.Logger = runLog;
        try
        {
            var config = previous ?? new RunConfig(runId, DateTime.UtcNow, settings, options, settings.Data, null, null, null, null, Versions(),
                RunFolder.GitCommit(Directory.GetCurrentDirectory()));
            if (previous is null) WriteConfig(outDir, config);
            runLog.Information("Run {RunId} in {RunDirectory}", runId, outDir);
            return await TrainAsync(settings, options, config, checkpoint, outDir, stdout, stderr, bar, runLog, wall, cancellation);
        }
        catch (OperationCanceledException) when (cancellation.IsCancellationRequested)
        {
            var resume = CheckpointStore.List(outDir).Count > 0 ? $"; continue it from its last checkpoint with: train --resume {outDir}" : "";
            runLog.ForContext(NodeLogging.FileOnly, true).Warning("Run {RunId} interrupted", runId);
            throw new InterruptedException($"interrupted{resume}");
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            runLog.ForContext(NodeLogging.FileOnly, true).Error(e, "Run {RunId} failed: {Reason}", runId, e.Message);
            throw;
        }
        finally
        {
            Log.Logger = previousLogger;
        }
    }

    private static void WriteConfig(string outDir, RunConfig config) =>
        AtomicFile.Write(Path.Combine(outDir, RunFolder.ConfigFile), JsonSerializer.SerializeToUtf8Bytes(config, Json.Indented));

    private static async Task<int> TrainAsync(TrainSettings settings, TrainingOptions options, RunConfig config, Checkpoint? checkpoint,
        string outDir, TextWriter stdout, TextWriter stderr, ProgressLine? bar, ILogger log, Stopwatch wall, CancellationToken cancellation)
    {
        var dataPath = await DataLocator.ResolveAsync(settings.Data, settings.DataDir, settings.DataUrl, log);
        var data = NamesData.Load(dataPath);
        if (config.DataSha256 is { } expected && expected != data.Stats.ContentSha256)
            throw new DataException($"the data at {dataPath} (SHA-256 {data.Stats.ContentSha256[..12]}…) is not the data the run in {outDir} was trained on ({expected[..12]}…)");
        WarnAboutSkippedLines(data, log);
        var train = Subset(data.SplitOf(Split.Train), settings.MaxNames);
        var validation = data.SplitOf(Split.Validation);
        var test = data.SplitOf(Split.Test);
        log.Information("Data {Source}: {Pairs} names in {Classes} languages; train {Train}, validation {Validation}, test {Test}",
            data.Source, data.Pairs.Count, data.Labels.Count, train.Count, validation.Count, test.Count);
        if (config.DataSha256 is null)
            WriteConfig(outDir, config with
            {
                DataPath = Path.GetFullPath(dataPath), DataSha256 = data.Stats.ContentSha256,
                TrainNames = train.Count, ValidationNames = validation.Count, TestNames = test.Count,
            });

        torch.set_num_threads(1);
        var model = options.Model(data.Labels.Count);
        var plan = new TrainingPlan(config.RunId, options, model, data.Labels, train, validation, test,
            settings.Cluster ? settings.MinWorkers : settings.Workers, settings.MaxAttempts, settings.ClusterSecret)
        {
            RunDirectory = outDir,
            CheckpointEvery = settings.CheckpointEvery,
            Resume = checkpoint,
            WorkerTimeout = TimeSpan.FromSeconds(settings.WorkerTimeout),
            AssignmentTimeout = TimeSpan.FromSeconds(settings.AssignmentTimeout),
            Replicas = settings.UseReplicas,
            SegmentSteps = settings.UseSegmentSteps,
        };
        var cluster = settings.Cluster
            ? new ClusterMode(settings.Hostname, settings.PublicHostname, settings.Port, settings.SeedNodes, settings.MaxFrameSize, settings.AddressFile, settings.Tls.Options())
            : null;
        var faults = new NameRnn.Worker.WorkerFaults(TimeSpan.FromMilliseconds(settings.TestSlowMs), NameRnn.Worker.WorkerFaults.ParseFailAt(settings.TestFailAt));
        var recording = new RecorderOptions(outDir, stderr, bar, checkpoint?.State.Step ?? 0);
        var outcome = await TrainingHost.RunAsync(plan, settings.Cluster ? 0 : settings.Workers, cluster, faults, log, cancellation, recording);
        if (outcome is TrainingFailed failed)
            throw new TrainingException(failed.Reason);
        var result = (TrainingCompleted)outcome;

        ModelStore.Save(outDir, new SavedModel(model, data.Labels, result.BestParameters));
        ModelStore.Save(outDir, new SavedModel(model, data.Labels, result.FinalParameters), "last");
        var pictures = Pictures.Write(outDir, result.Epochs, result.Test);
        var summary = Summary(settings, options, model, data, dataPath, train.Count, validation.Count, test.Count, result, wall.Elapsed.TotalSeconds);
        AtomicFile.Write(Path.Combine(outDir, RunFolder.SummaryFile), JsonSerializer.SerializeToUtf8Bytes(summary, Json.Indented));
        var shown = new Dictionary<string, string>
        {
            ["cell"] = options.Cell, ["hidden"] = options.Hidden.ToString(CultureInfo.InvariantCulture),
            ["embedding"] = options.Embedding.ToString(CultureInfo.InvariantCulture), ["bidirectional"] = options.Bidirectional.ToString(),
            ["pooling"] = options.Pooling, ["layers"] = options.Layers.ToString(CultureInfo.InvariantCulture),
            ["optimizer"] = options.Optimizer, ["learning rate"] = options.LearningRate.ToString(CultureInfo.InvariantCulture),
            ["schedule"] = options.Schedule, ["epochs"] = options.Epochs.ToString(CultureInfo.InvariantCulture),
            ["batch size"] = options.BatchSize.ToString(CultureInfo.InvariantCulture), ["micro-batch"] = options.MicroBatch.ToString(CultureInfo.InvariantCulture),
            ["dropout"] = options.Dropout.ToString(CultureInfo.InvariantCulture), ["class weight power"] = options.ClassWeightPower.ToString(CultureInfo.InvariantCulture),
            ["label smoothing"] = options.LabelSmoothing.ToString(CultureInfo.InvariantCulture),
            ["clip norm"] = options.ClipNorm.ToString(CultureInfo.InvariantCulture), ["seed"] = options.Seed.ToString(CultureInfo.InvariantCulture),
            ["mode"] = settings.Cluster ? "cluster" : $"local, {settings.Workers} workers", ["data"] = Path.GetFullPath(dataPath),
            ["parameters"] = model.ParameterCount.ToString(CultureInfo.InvariantCulture),
        };
        await File.WriteAllTextAsync(Path.Combine(outDir, RunFolder.ReportFile), SummaryReport.Render(config.RunId, shown, result, pictures), cancellation);

        log.Information("Run {RunId} done: test accuracy {TestAccuracy:F4}, macro-F1 {TestMacroF1:F4}", config.RunId, result.Test.Accuracy, result.Test.MacroF1);
        stdout.WriteLine($"test accuracy {result.Test.Accuracy:F4}, macro-F1 {result.Test.MacroF1:F4} (best epoch {result.BestEpoch} of {options.Epochs}, validation accuracy {result.BestValidation.Accuracy:F4})");
        stdout.WriteLine($"{result.TrainNamesPerSecond:F0} names/s with {result.WorkersSeen} worker{(result.WorkersSeen == 1 ? "" : "s")}; {wall.Elapsed.TotalSeconds:F1} s in all; run folder {outDir}");
        return 0;
    }

    /// <summary>
    /// The saved settings of the run in <paramref name="dir"/> with the mode options given now laid over
    /// them, and its newest checkpoint that reads back whole (newer, damaged ones are refused and logged).
    /// </summary>
    private static (TrainSettings, RunConfig, Checkpoint) Resume(TrainSettings current, IReadOnlySet<string> givenOptions, string dir, ILogger log)
    {
        var changed = givenOptions.Where(o => !TrainSettings.ModeOptions.Contains(o) && o != "--out").Order(StringComparer.Ordinal).ToList();
        if (changed.Count > 0)
            throw new UsageException($"option {changed[0]}: cannot change when resuming; the run in {dir} keeps its saved options (only mode options such as --workers or --cluster may differ)");
        var configPath = Path.Combine(dir, RunFolder.ConfigFile);
        if (!File.Exists(configPath))
            throw new DataException($"{configPath} not found: --resume expects the folder of a run started with train --out");
        RunConfig config;
        try
        {
            config = JsonSerializer.Deserialize<RunConfig>(File.ReadAllBytes(configPath), Json.Indented)
                     ?? throw new DataException($"{configPath}: empty");
        }
        catch (JsonException e)
        {
            throw new DataException($"{configPath}: not a NameRnn run configuration ({e.Message})");
        }
        // What the run computes comes from its saved settings; how it runs (local or cluster, workers,
        // timeouts) from this command line and its defaults; where the data is, from here if given.
        var settings = config.Settings;
        // Options left to their cell's default keep the value the run resolved them to, so that a
        // build with other defaults (or options the saved run predates) resumes the same model.
        var resolved = config.Options;
        settings.Embedding ??= resolved.Embedding;
        settings.Bidirectional ??= resolved.Bidirectional;
        settings.Pooling ??= resolved.Pooling;
        settings.Dropout ??= resolved.Dropout;
        settings.LabelSmoothing ??= resolved.LabelSmoothing;
        settings.ClassWeightPower ??= resolved.ClassWeightPower;
        settings.AverageDecay ??= resolved.AverageDecay;
        foreach (var option in CommandLine.OptionsOf(typeof(TrainSettings)))
            if (TrainSettings.ModeOptions.Contains(option.Attribute.Name) && (!TrainSettings.DataOptions.Contains(option.Attribute.Name) || givenOptions.Contains(option.Attribute.Name)))
                option.SetValue(settings, option.GetValue(current));
        settings.Out = dir;
        settings.Resume = null;
        if (config.DataSha256 is null)
            throw new DataException($"the run in {dir} never got as far as reading its data; start it again");
        settings.Validate();
        var (checkpoint, path, refused) = CheckpointStore.LoadLatest(dir);
        foreach (var reason in refused) log.Warning("Refused a checkpoint: {Reason}", reason);
        if (checkpoint is null)
            throw new DataException($"no usable checkpoint in {Path.Combine(dir, CheckpointStore.Folder)}: " +
                                    (refused.Count == 0 ? "there is none (the run stopped before its first checkpoint); start it again" : string.Join("; ", refused)));
        log.Information("Resuming run {RunId} from {Checkpoint} ({Position})", config.RunId, path, CheckpointStore.Describe(checkpoint));
        return (settings, config, checkpoint);
    }

    private static Dictionary<string, string> Versions() => new()
    {
        ["namernn"] = typeof(TrainCommand).Assembly.GetName().Version?.ToString() ?? "?",
        ["torchsharp"] = typeof(torch).Assembly.GetName().Version?.ToString() ?? "?",
        ["akka"] = typeof(Akka.Actor.ActorSystem).Assembly.GetName().Version?.ToString() ?? "?",
        ["dotnet"] = Environment.Version.ToString(),
        ["protocol"] = NameRnn.Contracts.Protocol.Version.ToString(),
        ["model_format"] = ModelConfig.Format,
    };

    /// <summary>A deterministic, class-mixed subset: the training pairs ordered by the FNV-1a hash of name and label.</summary>
    public static IReadOnlyList<LabelledName> Subset(IReadOnlyList<LabelledName> train, int maxNames)
    {
        if (maxNames <= 0 || maxNames >= train.Count) return train;
        return train
            .Select((pair, index) => (pair, index, key: NameSplit.Fnv1a32($"{pair.Label}:{pair.Name}")))
            .OrderBy(x => x.key).ThenBy(x => x.index)
            .Take(maxNames)
            .OrderBy(x => x.index)
            .Select(x => x.pair)
            .ToList();
    }

    private static void WarnAboutSkippedLines(NamesData data, ILogger log)
    {
        if (data.Stats.EmptyAfterNormalisation > 0)
            log.Warning("Skipped {Skipped} lines of {Source} whose names have no letter of the alphabet after normalisation",
                data.Stats.EmptyAfterNormalisation, data.Source);
    }

    private static Dictionary<string, object?> Summary(TrainSettings settings, TrainingOptions options, ModelConfig model, NamesData data,
        string dataPath, int train, int validation, int test, TrainingCompleted result, double wallSeconds) => new()
    {
        ["run_id"] = result.RunId,
        ["test_accuracy"] = result.Test.Accuracy,
        ["test_macro_f1"] = result.Test.MacroF1,
        ["best_validation_accuracy"] = result.BestValidation.Accuracy,
        ["best_validation_macro_f1"] = result.BestValidation.MacroF1,
        ["best_epoch"] = result.BestEpoch,
        ["epochs"] = options.Epochs,
        ["workers"] = settings.Cluster ? settings.MinWorkers : settings.Workers,
        ["mode"] = settings.Cluster ? "cluster" : "local",
        ["workers_seen"] = result.WorkersSeen,
        ["train_names_per_second"] = result.TrainNamesPerSecond,
        ["train_seconds"] = result.TrainSeconds,
        ["wall_seconds"] = wallSeconds,
        ["parameters_sha256"] = ModelStore.Sha256(result.FinalParameters),
        ["best_parameters_sha256"] = ModelStore.Sha256(result.BestParameters),
        ["parameter_count"] = model.ParameterCount,
        ["micro_batches_per_worker"] = result.MicroBatchesPerWorker,
        ["options"] = options,
        ["data"] = new Dictionary<string, object?>
        {
            ["path"] = Path.GetFullPath(dataPath),
            ["sha256"] = data.Stats.ContentSha256,
            ["train"] = train,
            ["validation"] = validation,
            ["test"] = test,
            ["lines"] = data.Stats.Lines,
            ["skipped_empty_after_normalisation"] = data.Stats.EmptyAfterNormalisation,
            ["duplicates_dropped"] = data.Stats.PairsBeforeDeduplication - data.Stats.PairsAfterDeduplication,
        },
        ["history"] = result.Epochs,
        ["test_per_class"] = result.Test.Classes,
    };
}

/// <summary>The run could not finish; the message says why.</summary>
public sealed class TrainingException(string message) : Exception(message);

/// <summary>The user stopped the command (Ctrl-C, SIGTERM); the message says what is kept.</summary>
public sealed class InterruptedException(string message) : Exception(message);
