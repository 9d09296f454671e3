using NameRnn.Worker.Hosting;
using NameRnn.Model.Data;
using NameRnn.Model.Training;
using Serilog;

namespace NameRnn.Coordinator.Cli;

/// <summary>
/// The command-line program. Settings flow one way: defaults in the settings types, then
/// <c>appsettings.json</c> (section named after the command), then <c>NAMERNN_</c> environment
/// variables, then the command line. Exit code 0 on success, 2 for a usage error, 1 for a failure;
/// an error is one line on stderr (with the stack trace under --verbose).
/// </summary>
public static class App
{
    private sealed record Command(string Name, string Summary, Func<CommandSettings> Settings, Func<CommandSettings, IReadOnlyList<string>, Context, Task<int>> Run);

    /// <param name="Given">The options given on the command line (not from defaults, appsettings.json or the environment).</param>
    public sealed record Context(TextWriter Out, TextWriter Error, ILogger Log, IReadOnlySet<string> Given, CancellationToken Cancellation);

    private static readonly Command[] Commands =
    [
        new("train", "train a model on the names data (local mode: coordinator and worker actors in this process)",
            () => new TrainSettings(), (s, _, c) => TrainCommand.RunAsync((TrainSettings)s, c.Given, c.Out, c.Error, c.Log, c.Cancellation)),
        new("predict", "the most likely languages of each NAME", () => new PredictSettings(),
            (s, rest, c) => Task.FromResult(PredictCommand.Run((PredictSettings)s, rest, c.Out))),
        new("evaluate", "accuracy, macro-F1, per-class figures and confusion matrix of a model on a split",
            () => new EvaluateSettings(), (s, _, c) => EvaluateCommand.RunAsync((EvaluateSettings)s, c.Out, c.Log)),
        new("bench", "training throughput of every mode side by side, time to 0.80 test accuracy, peak memory",
            () => new BenchSettings(), (s, _, c) => BenchCommand.RunAsync((BenchSettings)s, c.Out, c.Log, c.Cancellation)),
        new("runs list", "the runs under --runs-dir: name, date, model, epochs, test accuracy, macro-F1, duration",
            () => new RunsSettings(), (s, _, c) => Task.FromResult(RunsCommand.List((RunsSettings)s, c.Out))),
        new("runs show", "the report of one RUN", () => new RunsSettings(),
            (s, rest, c) => Task.FromResult(RunsCommand.Show((RunsSettings)s, rest, c.Out))),
        new("runs compare", "configuration differences and metrics of RUN RUN... side by side", () => new RunsSettings(),
            (s, rest, c) => Task.FromResult(RunsCommand.Compare((RunsSettings)s, rest, c.Out))),
        new("data fetch", "download the tutorial's data.zip into the data folder",
            () => new FetchSettings(), async (s, _, c) =>
            {
                var f = (FetchSettings)s;
                var path = await DataLocator.DownloadAsync(f.DataUrl, f.DataDir);
                c.Out.WriteLine($"saved {path}");
                return 0;
            }),
    ];

    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, CancellationToken cancellation = default)
    {
        var verbose = args.Contains("--verbose");
        try
        {
            var (command, rest) = Find(args);
            if (command is null)
            {
                stdout.Write(Usage());
                return args.Length == 0 || args[0] is "--help" or "-h" or "help" ? 0 : Error(stderr, $"unknown command '{string.Join(" ", args.Take(1))}'; commands: {string.Join(", ", Commands.Select(c => c.Name))}", 2);
            }
            var settings = command.Settings();
            CommandLine.Configure(settings, string.Concat(command.Name.Split(' ').Select(w => char.ToUpperInvariant(w[0]) + w[1..])));
            var given = new HashSet<string>(StringComparer.Ordinal);
            var positionals = CommandLine.Apply(settings, rest, given);
            if (settings.Help)
            {
                stdout.Write(Help(command));
                return 0;
            }
            if (positionals.Count > 0 && command.Name is not ("predict" or "runs show" or "runs compare"))
                throw new UsageException($"unexpected argument '{positionals[0]}' for {command.Name}");
            settings.Validate();
            using var logger = NodeLogging.Create(stderr, settings.Verbose);
            var previous = Log.Logger;
            Log.Logger = logger;
            try
            {
                return await command.Run(settings, positionals, new Context(stdout, stderr, logger, given, cancellation));
            }
            finally
            {
                Log.Logger = previous;
            }
        }
        catch (UsageException e)
        {
            return Error(stderr, e.Message, 2);
        }
        catch (InterruptedException e)
        {
            return Error(stderr, e.Message, Interrupted);
        }
        catch (OperationCanceledException) when (cancellation.IsCancellationRequested)
        {
            return Error(stderr, "interrupted", Interrupted);
        }
        catch (Exception e) when (e is DataException or TrainingException or IOException or UnauthorizedAccessException)
        {
            if (verbose) stderr.WriteLine(e);
            return Error(stderr, e.Message, 1);
        }
        catch (Exception e) when (!verbose)
        {
            return Error(stderr, $"{e.GetType().Name}: {e.Message} (run with --verbose for details)", 1);
        }
    }

    /// <summary>The exit code of a command stopped by Ctrl-C or SIGTERM (128 + SIGINT, as shells report it).</summary>
    public const int Interrupted = 130;

    private static int Error(TextWriter stderr, string message, int code)
    {
        stderr.WriteLine($"error: {message}");
        return code;
    }

    private static (Command? Command, IReadOnlyList<string> Remaining) Find(string[] args)
    {
        foreach (var command in Commands.OrderByDescending(c => c.Name.Length))
        {
            var words = command.Name.Split(' ');
            if (args.Length >= words.Length && words.SequenceEqual(args.Take(words.Length)))
                return (command, args.Skip(words.Length).ToList());
        }
        return (null, []);
    }

    private static string Usage() =>
        "NameRnn: a character-level RNN that tells the language of a surname, trained with actor-based data parallelism." + Environment.NewLine +
        Environment.NewLine + "usage: namernn <command> [options]" + Environment.NewLine + Environment.NewLine + "commands:" + Environment.NewLine +
        string.Concat(Commands.Select(c => $"  {c.Name,-12} {c.Summary}{Environment.NewLine}")) +
        Environment.NewLine + "Run 'namernn <command> --help' for a command's options." + Environment.NewLine;

    private static string Help(Command command) =>
        $"usage: namernn {command.Name} [options]{command.Name switch { "predict" => " NAME...", "runs show" => " RUN", "runs compare" => " RUN RUN...", _ => "" }}" + Environment.NewLine +
        command.Summary + Environment.NewLine + Environment.NewLine + "options:" + Environment.NewLine +
        CommandLine.Help(command.Settings()) + Environment.NewLine;
}
