using System.Diagnostics;
using System.Text.Json;
using NameRnn.Coordinator.Training;
using NameRnn.Model.Data;
using NameRnn.Model.Network;
using NameRnn.Model.Training;
using NameRnn.Worker;
using NameRnn.Worker.Hosting;
using Serilog;
using Serilog.Events;
using TorchSharp;

namespace NameRnn.Coordinator.Cli;

public sealed class BenchSettings : DataSettings
{
    [Option("--json", "print one JSON object instead of text", Value = "")]
    public bool Json { get; set; }

    [Option("--epochs", "full epochs of the training split measured per mode and round, after the warm-up epochs; the median epoch counts", Value = "N")]
    public int Epochs { get; set; } = 2;

    /// <summary>
    /// Three by default: a new worker process (the cluster's) ran its 2nd and 3rd epochs at about two thirds
    /// of its later speed while its code was compiled and tiered (four 10-epoch cluster runs at global batch
    /// 256); with one warm-up epoch the benchmark measured those (30 080 / 35 128 names/s against 50 467 /
    /// 47 574 with three, in alternating runs).
    /// </summary>
    [Option("--warm-up", "epochs run before the measured ones in every mode and round, not counted: JIT compilation and tiering (a new worker process takes a few epochs), connection set-up, first-touch allocations", Value = "N")]
    public int WarmUp { get; set; } = 3;

    /// <summary>
    /// Four by default (two until the thirteenth session). The development machines are shared, and a mode's
    /// speed swings by a third and more between rounds of one run (the loop without actors at batch 64 made
    /// 61 657 / 53 049 / 33 756 / 66 252 names/s in the four rounds of one run); noise only ever slows a
    /// mode down, so each mode keeps its best round, and with two rounds a slow spell over both of one
    /// mode's rounds decided a comparison more than once.
    /// </summary>
    [Option("--rounds", "measurements per mode, in alternating order; each mode keeps its best", Value = "N")]
    public int Rounds { get; set; } = 4;

    /// <summary>
    /// Unset: half the global batch, so that each of two workers computes one micro-batch per step, as
    /// PyTorch DDP gives each process its share of the batch, and as the loop without actors computes
    /// its whole batch as one. Micro-batches of 32 (the training default, which lets up to 8 workers
    /// share a batch of 256) cost each worker a few operations per micro-batch for the sums over its
    /// names: at batch 256, local mode with 2 workers made 70 679 names/s with them in a benchmark run
    /// between two runs that made 87 574 and 71 668 with one micro-batch per worker; in two earlier
    /// alternating pairs, 61 060 and 59 112 against 77 898 and 63 515.
    /// </summary>
    [Option("--micro-batch", "names per micro-batch in the actor modes, at most half the global batch so that both workers have work (default: half the global batch, one micro-batch per worker of 2, as the loop without actors computes the whole batch at once)", Value = "N")]
    public int? MicroBatch { get; set; }

    [Option("--skip-cluster", "leave out the measurements that start worker processes", Value = "")]
    public bool SkipCluster { get; set; }

    public override void Validate()
    {
        CommandLine.Range("--epochs", Epochs, 1, 1000);
        CommandLine.Range("--warm-up", WarmUp, 0, 1000);
        CommandLine.Range("--rounds", Rounds, 1, 100);
        if (MicroBatch is { } microBatch) CommandLine.Range("--micro-batch", microBatch, 1, 1 << 20);
    }

    /// <summary>The actor modes' micro-batch at a global batch: <see cref="MicroBatch"/> or half the batch, at most half of it.</summary>
    public int MicroBatchAt(int batch) => Math.Max(1, Math.Min(MicroBatch ?? batch / 2, batch / 2));
}

/// <summary>
/// <c>bench</c>: training throughput of every mode side by side in one run, with the same model
/// (the default Elman RNN) and global batch: a plain TorchSharp loop without actors on all cores,
/// local mode with 1 and 2 workers, and a cluster of 2 worker processes on 127.0.0.1; then the
/// wall time of the default configuration until test accuracy first reaches 0.80, and peak RSS.
/// Each mode's figure is the median names/s of its measured epochs after the warm-up epochs, and the
/// best of a few rounds run in alternating order (the machines this runs on are shared and noisy).
/// </summary>
public static class BenchCommand
{
    public sealed record Throughput(double NoActorNamesPerSecond, double Local1NamesPerSecond, double Local2NamesPerSecond,
        double? Cluster2NamesPerSecond, double Local2SecondsPerStep, double? Cluster2SecondsPerStep, int MicroBatch);

    public static async Task<int> RunAsync(BenchSettings settings, TextWriter stdout, ILogger log, CancellationToken cancellation)
    {
        var dataPath = await DataLocator.ResolveAsync(settings.Data, settings.DataDir, settings.DataUrl, log);
        var data = NamesData.Load(dataPath);
        var train = data.SplitOf(Split.Train);
        var quiet = new LoggerConfiguration().MinimumLevel.Is(LogEventLevel.Warning).WriteTo.Logger(log).CreateLogger();
        var workerPeaks = new List<long>();

        var results = new Dictionary<int, Throughput>();
        foreach (var batch in new[] { 64, 256 })
        {
            log.Information("Measuring global batch {Batch}: {Rounds} round(s), each mode {Epochs} epoch(s) of {Names} names after {WarmUp} warm-up epoch(s)",
                batch, settings.Rounds, settings.Epochs, train.Count, settings.WarmUp);
            var options = new TrainSettings { Epochs = settings.Epochs + settings.WarmUp, BatchSize = batch, MicroBatch = settings.MicroBatchAt(batch) }.ToTrainingOptions();
            var modes = new List<(string Name, Func<Task<ActorRun?>> Measure)>
            {
                ("no actors", () => OnOwnThread(() => NoActor(options, settings.WarmUp, data, train))),
                ("local 1", async () => await Actors(options, settings.WarmUp, data, train, 1, null, quiet, workerPeaks, cancellation)),
                ("local 2", async () => await Actors(options, settings.WarmUp, data, train, 2, null, quiet, workerPeaks, cancellation)),
                ("cluster 2", async () => settings.SkipCluster ? null : await Actors(options, settings.WarmUp, data, train, 0, 2, quiet, workerPeaks, cancellation)),
            };
            // Rounds alternate the order of the modes and each mode keeps its best round: a slow spell
            // of the shared machine then costs a mode one of its rounds, not the comparison.
            var best = new Dictionary<string, ActorRun?>();
            for (var round = 0; round < settings.Rounds; round++)
                foreach (var (name, measure) in round % 2 == 0 ? modes : Enumerable.Reverse(modes))
                {
                    var run = await measure();
                    log.Information("Batch {Batch}, round {Round}: {Mode} {NamesPerSecond:F0} names/s", batch, round + 1, name, run?.NamesPerSecond ?? double.NaN);
                    if (!best.TryGetValue(name, out var kept) || (run is not null && run.NamesPerSecond > kept!.NamesPerSecond)) best[name] = run;
                }
            var (noActor, local1, local2, cluster2) = (best["no actors"]!, best["local 1"]!, best["local 2"]!, best["cluster 2"]);
            results[batch] = new Throughput(noActor.NamesPerSecond, local1.NamesPerSecond, local2.NamesPerSecond, cluster2?.NamesPerSecond,
                local2.SecondsPerStep, cluster2?.SecondsPerStep, options.MicroBatch);
            log.Information("Batch {Batch}: no actors {NoActor:F0}, local 1 {Local1:F0}, local 2 {Local2:F0}, cluster 2 {Cluster2:F0} names/s",
                batch, noActor.NamesPerSecond, local1.NamesPerSecond, local2.NamesPerSecond, cluster2?.NamesPerSecond ?? double.NaN);
        }

        var clock = Stopwatch.StartNew();
        var toGoal = await Actors(new TrainSettings().ToTrainingOptions(), 0, data, train, Environment.ProcessorCount, null, quiet, workerPeaks, cancellation, stopAt: 0.80);
        var secondsTo080 = toGoal.ReachedGoal ? clock.Elapsed.TotalSeconds : (double?)null;

        var report = Figures(results[64]);
        report["batch_256"] = Figures(results[256]);
        report["seconds_to_080_test_accuracy"] = secondsTo080;
        report["epochs_to_080_test_accuracy"] = toGoal.Epochs;
        report["coordinator_peak_rss_mb"] = PeakRssMegabytes(Environment.ProcessId);
        report["worker_peak_rss_mb"] = workerPeaks.Count == 0 ? null : workerPeaks.Max() / 1024.0 / 1024.0;
        report["epochs_per_measurement"] = settings.Epochs;
        report["warm_up_epochs"] = settings.WarmUp;
        report["rounds"] = settings.Rounds;
        report["train_names"] = train.Count;
        report["processors"] = Environment.ProcessorCount;
        if (settings.Json)
        {
            stdout.WriteLine(JsonSerializer.Serialize(report, Json.Indented));
            return 0;
        }
        stdout.WriteLine($"training names/s, default Elman RNN, {train.Count} names, median of {settings.Epochs} epoch(s) after {settings.WarmUp} warm-up epoch(s), best of {settings.Rounds} round(s), {Environment.ProcessorCount} cores; the loop without actors computes the whole batch at once, the actor modes micro-batches");
        stdout.WriteLine($"{"global batch",-14}{"micro-batch",12}{"no actors",12}{"local 1",12}{"local 2",12}{"cluster 2",12}");
        foreach (var (batch, t) in results)
            stdout.WriteLine($"{batch,-14}{t.MicroBatch,12}{t.NoActorNamesPerSecond,12:F0}{t.Local1NamesPerSecond,12:F0}{t.Local2NamesPerSecond,12:F0}{t.Cluster2NamesPerSecond,12:F0}");
        stdout.WriteLine(secondsTo080 is { } s
            ? $"default train configuration: test accuracy 0.80 after {toGoal.Epochs} epoch(s), {s:F1} s"
            : "default train configuration: test accuracy 0.80 not reached");
        stdout.WriteLine($"peak RSS: coordinator {report["coordinator_peak_rss_mb"]:F0} MB, worker processes {report["worker_peak_rss_mb"]:F0} MB");
        return 0;
    }

    /// <summary>One global batch's figures, under the names <c>--json</c> prints.</summary>
    private static Dictionary<string, object?> Figures(Throughput t) => new()
    {
        ["no_actor_names_per_second"] = t.NoActorNamesPerSecond,
        ["local_1_names_per_second"] = t.Local1NamesPerSecond,
        ["local_2_names_per_second"] = t.Local2NamesPerSecond,
        ["cluster_2_names_per_second"] = t.Cluster2NamesPerSecond,
        ["local_2_seconds_per_step"] = t.Local2SecondsPerStep,
        ["cluster_2_seconds_per_step"] = t.Cluster2SecondsPerStep,
        ["actor_micro_batch"] = t.MicroBatch,
    };

    /// <summary>
    /// Runs <paramref name="measure"/> on a thread of its own that ends with it, as the main thread of a plain
    /// program would. On a .NET thread-pool thread, where the benchmark's awaits leave it, libtorch's intra-op
    /// threads ran the same loop 2–4 times slower (global batch 256: about 22 000 names/s against 48 000–62 000
    /// on a thread of its own, reused or new), which understated the floor the actors are to beat.
    /// </summary>
    private static Task<ActorRun?> OnOwnThread(Func<ActorRun> measure)
    {
        var done = new TaskCompletionSource<ActorRun?>(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            try
            {
                done.SetResult(measure());
            }
            catch (Exception e)
            {
                done.SetException(e);
            }
        }) { IsBackground = true, Name = "namernn-bench-no-actors" };
        thread.Start();
        return done.Task;
    }

    /// <summary>The floor: one process, no actors, all cores for TorchSharp, one micro-batch per step.</summary>
    private static ActorRun NoActor(TrainingOptions options, int warmUp, NamesData data, IReadOnlyList<LabelledName> train)
    {
        torch.set_num_threads(Environment.ProcessorCount);
        var config = options.Model(data.Labels.Count);
        var run = new TrainingRun(options with { MicroBatch = options.BatchSize }, config, train, ParameterInit.Create(config, options.Seed));
        var rates = new List<double>();
        var clock = Stopwatch.StartNew();
        PlainTrainer.Train(run, TrainingRun.ClassWeights(train, config.Classes, options.ClassWeightPower), outcome =>
        {
            if (!outcome.EpochEnded) return;
            rates.Add(train.Count / clock.Elapsed.TotalSeconds);
            clock.Restart();
        });
        torch.set_num_threads(1);
        var rate = MeasuredRate(rates, warmUp);
        return new ActorRun(rate, SecondsPerStep(rate, train.Count, options.BatchSize), false, rates.Count);
    }

    /// <summary>The seconds of an optimizer step at <paramref name="namesPerSecond"/>: an epoch's time over its steps (the last one may be short).</summary>
    private static double SecondsPerStep(double namesPerSecond, int names, int batchSize) => names / namesPerSecond / Math.Ceiling((double)names / batchSize);

    /// <summary>The median names/s of the epochs after the warm-up: robust to a stall of the shared machine in one epoch.</summary>
    private static double MeasuredRate(IReadOnlyList<double> epochRates, int warmUp)
    {
        var measured = epochRates.Skip(warmUp).Order().ToList();
        if (measured.Count == 0) throw new TrainingException("the benchmark run ended before its measured epochs");
        var middle = measured.Count / 2;
        return measured.Count % 2 == 1 ? measured[middle] : (measured[middle - 1] + measured[middle]) / 2;
    }

    private sealed record ActorRun(double NamesPerSecond, double SecondsPerStep, bool ReachedGoal, int Epochs);

    private static async Task<ActorRun> Actors(TrainingOptions options, int warmUp, NamesData data, IReadOnlyList<LabelledName> train,
        int localWorkers, int? clusterWorkers, ILogger log, List<long> workerPeaks, CancellationToken cancellation, double? stopAt = null)
    {
        torch.set_num_threads(1);
        var config = options.Model(data.Labels.Count);
        var plan = new TrainingPlan("bench", options, config, data.Labels, train, data.SplitOf(Split.Validation), data.SplitOf(Split.Test),
            clusterWorkers ?? localWorkers) { StopAtTestAccuracy = stopAt, Replicas = clusterWorkers is not null, SegmentSteps = clusterWorkers is not null ? TrainingPlan.DefaultSegmentSteps : 0 };
        var workers = new List<Process>();
        ClusterMode? cluster = null;
        string? addressFile = null;
        if (clusterWorkers is { } n)
        {
            addressFile = Path.Combine(Path.GetTempPath(), $"namernn-bench-{Guid.NewGuid():N}.address");
            cluster = new ClusterMode("127.0.0.1", null, 0, [], NameRnnHosting.DefaultMaxFrameSize, addressFile, null);
        }
        var training = TrainingHost.RunAsync(plan, localWorkers, cluster, WorkerFaults.None, log, cancellation);
        using var sampling = new CancellationTokenSource();
        Task? sampler = null;
        try
        {
            if (clusterWorkers is { } count)
            {
                while (!File.Exists(addressFile!) && !training.IsCompleted) await Task.Delay(50, cancellation);
                var address = (await File.ReadAllTextAsync(addressFile!, cancellation)).Trim();
                for (var i = 0; i < count; i++) workers.Add(StartWorker(address));
                sampler = SamplePeaksAsync(workers, workerPeaks, sampling.Token);
            }
            var outcome = await training;
            if (outcome is TrainingFailed failed) throw new TrainingException($"benchmark run failed: {failed.Reason}");
            var result = (TrainingCompleted)outcome;
            var reached = stopAt is { } goal && result.Epochs.Any(e => e.TestAccuracy >= goal);
            if (stopAt is not null) return new ActorRun(result.TrainNamesPerSecond, 0, reached, result.Epochs.Count);
            var rate = MeasuredRate(result.Epochs.Select(e => e.NamesPerSecond).ToList(), warmUp);
            return new ActorRun(rate, SecondsPerStep(rate, train.Count, options.BatchSize), reached, result.Epochs.Count);
        }
        finally
        {
            await sampling.CancelAsync();
            if (sampler is not null) await sampler;
            foreach (var worker in workers)
            {
                if (!worker.WaitForExit(TimeSpan.FromSeconds(30))) worker.Kill(entireProcessTree: true);
                worker.Dispose();
            }
            if (addressFile is not null) File.Delete(addressFile);
        }
    }

    private static Process StartWorker(string address)
    {
        var info = new ProcessStartInfo(Path.Combine(AppContext.BaseDirectory, "namernn-worker"))
        {
            UseShellExecute = false,
            RedirectStandardError = true,
            RedirectStandardOutput = true,
        };
        foreach (var arg in new[] { "--seed-node", address, "--hostname", "127.0.0.1" }) info.ArgumentList.Add(arg);
        var process = Process.Start(info) ?? throw new TrainingException("could not start namernn-worker");
        process.ErrorDataReceived += (_, _) => { };
        process.OutputDataReceived += (_, _) => { };
        process.BeginErrorReadLine();
        process.BeginOutputReadLine();
        return process;
    }

    private static async Task SamplePeaksAsync(List<Process> workers, List<long> peaks, CancellationToken cancellation)
    {
        var peak = new long[workers.Count];
        while (true)
        {
            for (var i = 0; i < workers.Count; i++)
                if (PeakRssBytes(workers[i].Id) is { } bytes) peak[i] = Math.Max(peak[i], bytes);
            try { await Task.Delay(100, cancellation); }
            catch (OperationCanceledException) { break; }
        }
        lock (peaks) peaks.AddRange(peak);
    }

    /// <summary>VmHWM (the peak resident set) of a process, from /proc.</summary>
    public static long? PeakRssBytes(int pid)
    {
        try
        {
            var line = File.ReadLines($"/proc/{pid}/status").FirstOrDefault(l => l.StartsWith("VmHWM:", StringComparison.Ordinal));
            return line is null ? null : long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
        }
        catch (IOException)
        {
            return null;
        }
    }

    private static double? PeakRssMegabytes(int pid) => PeakRssBytes(pid) / 1024.0 / 1024.0;
}
