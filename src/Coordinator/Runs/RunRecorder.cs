using System.Globalization;
using System.Text;
using Akka.Actor;
using NameRnn.Coordinator.Training;
using NameRnn.Worker.Hosting;
using TorchSharp;

namespace NameRnn.Coordinator.Runs;

/// <summary>One optimizer step, as the coordinator saw it.</summary>
public sealed record StepRecorded(long Step, int Epoch, int StepInEpoch, int StepsPerEpoch, int Epochs, double Loss, double LearningRate,
    double NamesPerSecond, int Workers);

/// <summary>
/// Optimizer steps in order, sent a few at a time (see <see cref="TrainingCoordinator.RecordEvery"/>): a
/// message per step woke the recorder's thread a thousand times a second, to compete with the workers
/// for the cores. Eight alternating pairs of 10-epoch local runs at batch 64 (median epoch), a message
/// per step against one per 16: +2.0, −5.7, +24.8, +5.6, −10.1, +7.5, +3.2, +12.7 % names/s.
/// </summary>
public sealed record StepsRecorded(IReadOnlyList<StepRecorded> Steps);

/// <summary>One finished epoch.</summary>
public sealed record EpochRecorded(long Step, EpochSummary Summary);

/// <summary>Where a run's metrics go and how progress is shown.</summary>
/// <param name="Bar">The terminal's progress line, or null when the output is not a terminal (plain lines go to <paramref name="Plain"/>).</param>
public sealed record RecorderOptions(string RunDirectory, TextWriter Plain, ProgressLine? Bar, long ResumeStep);

/// <summary>
/// Records a run as it goes: <c>metrics.csv</c> (a row per step and per epoch, told apart by
/// <c>kind</c>), TensorBoard scalars (<c>events.out.tfevents.*</c>) and the progress shown to the
/// user: a live bar on an interactive terminal, plain periodic lines otherwise. It runs beside the
/// coordinator so that file writes never hold up a step.
/// </summary>
public sealed class RunRecorder : ReceiveActor
{
    public const string MetricsFile = "metrics.csv";
    public static readonly string[] Columns =
    [
        "kind", "epoch", "step", "loss", "learning_rate", "names_per_second", "workers",
        "train_loss", "train_accuracy", "validation_loss", "validation_accuracy", "validation_macro_f1", "seconds",
    ];

    private static readonly TimeSpan PlainInterval = TimeSpan.FromSeconds(10);

    /// <summary>Step scalars go to TensorBoard every this many steps (and at each epoch's end): each write costs a file append.</summary>
    public const int TensorBoardEvery = 10;

    private readonly RecorderOptions _options;
    private readonly StreamWriter _metrics;
    private readonly TorchSharp.Modules.SummaryWriter _tensorboard;
    private readonly System.Diagnostics.Stopwatch _sinceLine = System.Diagnostics.Stopwatch.StartNew();
    private readonly System.Diagnostics.Stopwatch _epochClock = System.Diagnostics.Stopwatch.StartNew();

    public RunRecorder(RecorderOptions options)
    {
        _options = options;
        var path = Path.Combine(options.RunDirectory, MetricsFile);
        var kept = KeepRowsBefore(path, options.ResumeStep);
        _metrics = new StreamWriter(new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.Read), new UTF8Encoding(false));
        _metrics.WriteLine(string.Join(",", Columns));
        foreach (var row in kept) _metrics.WriteLine(row);
        _metrics.Flush();
        _tensorboard = torch.utils.tensorboard.SummaryWriter(options.RunDirectory, "", false);
        Receive<StepsRecorded>(batch =>
        {
            foreach (var step in batch.Steps) OnStep(step);
            if (batch.Steps.Count > 0) ShowProgress(batch.Steps[^1]);
        });
        Receive<EpochRecorded>(OnEpoch);
    }

    public static Props Props(RecorderOptions options) => Akka.Actor.Props.Create(() => new RunRecorder(options));

    /// <summary>On resume, the rows of steps that will be run again are dropped.</summary>
    private static List<string> KeepRowsBefore(string path, long step)
    {
        if (step <= 0 || !File.Exists(path)) return [];
        return File.ReadLines(path).Skip(1)
            .Where(line => line.Split(',') is var cells && cells.Length > 2 && long.TryParse(cells[2], out var s) && s < step)
            .ToList();
    }

    private static string F(double value) => double.IsFinite(value) ? value.ToString("R", CultureInfo.InvariantCulture) : "";

    private void OnStep(StepRecorded s)
    {
        _metrics.WriteLine(string.Join(",", "step", s.Epoch + 1, s.Step + 1, F(s.Loss), F(s.LearningRate), F(s.NamesPerSecond), s.Workers, "", "", "", "", "", ""));
        var step = (int)Math.Min(s.Step + 1, int.MaxValue);
        if (step % TensorBoardEvery == 0 || s.StepInEpoch + 1 == s.StepsPerEpoch)
        {
            _tensorboard.add_scalar("train/loss", (float)s.Loss, step);
            _tensorboard.add_scalar("train/learning_rate", (float)s.LearningRate, step);
            _tensorboard.add_scalar("train/names_per_second", (float)s.NamesPerSecond, step);
            _tensorboard.add_scalar("train/workers", s.Workers, step);
        }
    }

    private void OnEpoch(EpochRecorded e)
    {
        var s = e.Summary;
        _metrics.WriteLine(string.Join(",", "epoch", s.Epoch, e.Step, "", F(s.LearningRate), F(s.NamesPerSecond), s.Workers,
            F(s.TrainLoss), F(s.TrainAccuracy), F(s.ValidationLoss), F(s.ValidationAccuracy), F(s.ValidationMacroF1), F(s.Seconds)));
        _metrics.Flush();
        _tensorboard.add_scalar("epoch/train_loss", (float)s.TrainLoss, s.Epoch);
        _tensorboard.add_scalar("epoch/train_accuracy", (float)s.TrainAccuracy, s.Epoch);
        _tensorboard.add_scalar("epoch/validation_loss", (float)s.ValidationLoss, s.Epoch);
        _tensorboard.add_scalar("epoch/validation_accuracy", (float)s.ValidationAccuracy, s.Epoch);
        _tensorboard.add_scalar("epoch/validation_macro_f1", (float)s.ValidationMacroF1, s.Epoch);
        _tensorboard.add_scalar("epoch/names_per_second", (float)s.NamesPerSecond, s.Epoch);
        _tensorboard.add_scalar("epoch/learning_rate", (float)s.LearningRate, s.Epoch);
        _options.Bar?.Clear();
        _epochClock.Restart();
    }

    /// <summary>A bar redrawn in place on a terminal; elsewhere a plain line every few seconds, never an escape code.</summary>
    private void ShowProgress(StepRecorded s)
    {
        var done = s.StepInEpoch + 1;
        var elapsed = _epochClock.Elapsed.TotalSeconds;
        var eta = done > 0 ? TimeSpan.FromSeconds(elapsed / done * (s.StepsPerEpoch - done)) : TimeSpan.Zero;
        var text = string.Create(CultureInfo.InvariantCulture,
            $"epoch {s.Epoch + 1}/{s.Epochs} step {done}/{s.StepsPerEpoch} loss {s.Loss:F4} {s.NamesPerSecond:F0} names/s {s.Workers} workers ETA {eta:m\\:ss}");
        if (_options.Bar is { } bar)
        {
            const int width = 24;
            var filled = (int)Math.Round(width * (double)done / s.StepsPerEpoch);
            bar.Show($"[{new string('#', filled)}{new string('.', width - filled)}] {text}");
        }
        else if (_sinceLine.Elapsed >= PlainInterval)
        {
            _options.Plain.WriteLine(text);
            _sinceLine.Restart();
        }
    }

    protected override void PostStop()
    {
        _options.Bar?.Clear();
        _metrics.Dispose();
    }
}
