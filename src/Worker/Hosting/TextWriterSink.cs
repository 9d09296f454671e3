using Serilog.Core;
using Serilog.Events;
using Serilog.Formatting;

namespace NameRnn.Worker.Hosting;

/// <summary>Writes log events to a <see cref="TextWriter"/> (stderr, or a test's capture).</summary>
public sealed class TextWriterSink(TextWriter writer, ITextFormatter formatter) : ILogEventSink
{
    private readonly Lock _lock = new();

    public void Emit(LogEvent logEvent)
    {
        lock (_lock)
        {
            formatter.Format(logEvent, writer);
            writer.Flush();
        }
    }
}
