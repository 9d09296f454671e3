using Serilog;
using Serilog.Core;
using Serilog.Events;
using Serilog.Formatting.Display;

namespace NameRnn.Worker.Hosting;

public static class NodeLogging
{
    public const string ConsoleTemplate = "[{Timestamp:HH:mm:ss} {Level:u3}] {Message:lj}{NewLine}{Exception}";

    /// <summary>Human-readable log lines to <paramref name="writer"/> (stderr, so that stdout carries only results).</summary>
    public static Logger Create(TextWriter writer, bool verbose) => new LoggerConfiguration()
        .MinimumLevel.Is(verbose ? LogEventLevel.Debug : LogEventLevel.Information)
        .MinimumLevel.Override("Akka", verbose ? LogEventLevel.Debug : LogEventLevel.Warning)
        .MinimumLevel.Override("Microsoft", LogEventLevel.Warning)
        .WriteTo.Sink(new TextWriterSink(writer, new MessageTemplateTextFormatter(ConsoleTemplate)))
        .CreateLogger();
}
