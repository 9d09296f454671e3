using NameRnn.Worker.Hosting;
using System.Diagnostics;
using System.Text.Json;
using NameRnn.Coordinator.Training;
using NameRnn.Model.Data;
using NameRnn.Model.Network;
using NameRnn.Model.Training;
using Serilog;
using TorchSharp;

namespace NameRnn.Coordinator.Cli;

/// <summary><c>train</c>: reads the data, trains with the actor protocol, writes the model and summary.json.</summary>
public static class TrainCommand
{
    public static async Task<int> RunAsync(TrainSettings settings, TextWriter stdout, ILogger log, CancellationToken cancellation)
    {
        var wall = Stopwatch.StartNew();
        var options = settings.ToTrainingOptions();
        var dataPath = await DataLocator.ResolveAsync(settings.Data, settings.DataDir, settings.DataUrl, log);
        var data = NamesData.Load(dataPath);
        WarnAboutSkippedLines(data, log);
        var train = Subset(data.SplitOf(Split.Train), settings.MaxNames);
        var validation = data.SplitOf(Split.Validation);
        var test = data.SplitOf(Split.Test);
        log.Information("Data {Source}: {Pairs} names in {Classes} languages; train {Train}, validation {Validation}, test {Test}",
            data.Source, data.Pairs.Count, data.Labels.Count, train.Count, validation.Count, test.Count);

        torch.set_num_threads(1);
        var model = ModelConfig.Create(options.Cell, options.Hidden, data.Labels.Count);
        var runId = $"{DateTime.UtcNow:yyyyMMdd-HHmmss}-{Guid.NewGuid().ToString("N")[..6]}";
        var plan = new TrainingPlan(runId, options, model, data.Labels, train, validation, test,
            settings.Cluster ? settings.MinWorkers : settings.Workers, ClusterSecret: settings.ClusterSecret);
        var cluster = settings.Cluster
            ? new ClusterMode(settings.Hostname, settings.Port, settings.SeedNodes, settings.MaxFrameSize, settings.AddressFile)
            : null;
        var outcome = await TrainingHost.RunAsync(plan, settings.Cluster ? 0 : settings.Workers, cluster, log, cancellation);
        if (outcome is TrainingFailed failed)
            throw new TrainingException(failed.Reason);
        var result = (TrainingCompleted)outcome;

        var outDir = settings.Out!;
        ModelStore.Save(outDir, new SavedModel(model, data.Labels, result.BestParameters));
        ModelStore.Save(outDir, new SavedModel(model, data.Labels, result.FinalParameters), "last");
        var summary = Summary(settings, options, model, data, dataPath, train.Count, validation.Count, test.Count, result, wall.Elapsed.TotalSeconds);
        AtomicFile.Write(Path.Combine(outDir, "summary.json"), JsonSerializer.SerializeToUtf8Bytes(summary, Json.Indented));

        stdout.WriteLine($"test accuracy {result.Test.Accuracy:F4}, macro-F1 {result.Test.MacroF1:F4} (best epoch {result.BestEpoch} of {options.Epochs}, validation accuracy {result.BestValidation.Accuracy:F4})");
        stdout.WriteLine($"{result.TrainNamesPerSecond:F0} names/s with {result.WorkersSeen} workers; {wall.Elapsed.TotalSeconds:F1} s in all; model and summary.json in {outDir}");
        return 0;
    }

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
