using Serilog;
using Serilog.Core;
using Serilog.Events;
using Serilog.Formatting.Compact;
using Serilog.Formatting.Display;

namespace NameRnn.Worker.Hosting;

/// <summary>Adds the run a node works for to every event, once it is known (one run at a time per node).</summary>
public sealed class RunIdEnricher : ILogEventEnricher
{
    private volatile string? _runId;

    public string? RunId
    {
        get => _runId;
        set => _runId = value;
    }

    public void Enrich(LogEvent logEvent, ILogEventPropertyFactory factory)
    {
        if (_runId is { } runId) logEvent.AddPropertyIfAbsent(factory.CreateProperty("RunId", runId));
    }
}

public static class NodeLogging
{
    public const string ConsoleTemplate = "[{Timestamp:HH:mm:ss} {Level:u3}] {Message:lj}{NewLine}{Exception}";
    public static readonly IReadOnlyList<string> Levels = ["verbose", "debug", "information", "warning", "error"];

    public static LogEventLevel Parse(string level) => level.ToLowerInvariant() switch
    {
        "verbose" => LogEventLevel.Verbose,
        "debug" => LogEventLevel.Debug,
        "information" or "info" => LogEventLevel.Information,
        "warning" => LogEventLevel.Warning,
        "error" => LogEventLevel.Error,
        _ => throw new UsageException($"option --log-level: '{level}' is not one of {string.Join(", ", Levels)}"),
    };

    /// <summary>Human-readable log lines to <paramref name="writer"/> (stderr, so that stdout carries only results).</summary>
    public static Logger Create(TextWriter writer, bool verbose, string level = "information") => Configure(writer, verbose ? LogEventLevel.Debug : Parse(level)).CreateLogger();

    /// <summary>
    /// The console lines, plus, when <paramref name="clefFile"/> is given, a CLEF file (compact JSON, one
    /// event per line with its properties); every event carries the node and its role.
    /// </summary>
    public static Logger Create(TextWriter writer, LogEventLevel level, string role, string node, string? clefFile, RunIdEnricher? runId = null,
        ProgressLine? progress = null)
    {
        var configuration = Configure(writer, level, progress)
            .Enrich.WithProperty("Role", role)
            .Enrich.WithProperty("Node", node);
        if (runId is not null) configuration = configuration.Enrich.With(runId);
        if (clefFile is not null)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(clefFile))!);
            configuration = configuration.WriteTo.File(new CompactJsonFormatter(), clefFile, flushToDiskInterval: TimeSpan.FromSeconds(1));
        }
        return configuration.CreateLogger();
    }

    /// <summary>Events with this property go to the log file only (e.g. an error the console already shows as the error line).</summary>
    public const string FileOnly = "FileOnly";

    private static LoggerConfiguration Configure(TextWriter writer, LogEventLevel level, ProgressLine? progress = null) => new LoggerConfiguration()
        .MinimumLevel.Is(level)
        .MinimumLevel.Override("Akka", level <= LogEventLevel.Debug ? level : LogEventLevel.Warning)
        .MinimumLevel.Override("Microsoft", LogEventLevel.Warning)
        .WriteTo.Logger(console => console
            .Filter.ByExcluding(e => e.Properties.ContainsKey(FileOnly))
            .WriteTo.Sink(new TextWriterSink(writer, new MessageTemplateTextFormatter(ConsoleTemplate), progress)));
}

/// <summary>
/// Akka's fallback logger (used while the actor system starts and stops, before and after Serilog):
/// warnings and errors to stderr, so that stdout carries only a command's results.
/// </summary>
public sealed class StandardErrorLogger : Akka.Event.MinimalLogger
{
    protected override void Log(object message)
    {
        if (message is Akka.Event.LogEvent e && e.LogLevel() < Akka.Event.LogLevel.WarningLevel) return;
        Console.Error.WriteLine(message);
    }
}
