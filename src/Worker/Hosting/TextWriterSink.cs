using Serilog.Core;
using Serilog.Events;
using Serilog.Formatting;

namespace NameRnn.Worker.Hosting;

/// <summary>
/// A status line kept at the bottom of an interactive terminal (a progress bar): log lines are
/// written above it, and it is drawn again after each. Only for terminals: it writes escape codes.
/// </summary>
public sealed class ProgressLine(TextWriter writer)
{
    private readonly Lock _lock = new();
    private string? _text;

    public TextWriter Writer => writer;

    public void Show(string text)
    {
        lock (_lock)
        {
            _text = text;
            writer.Write("\r\u001b[2K" + text);
            writer.Flush();
        }
    }

    public void Clear()
    {
        lock (_lock)
        {
            if (_text is null) return;
            _text = null;
            writer.Write("\r\u001b[2K");
            writer.Flush();
        }
    }

    /// <summary>Writes <paramref name="write"/>'s output on its own lines above the status line.</summary>
    public void Above(Action<TextWriter> write)
    {
        lock (_lock)
        {
            if (_text is not null) writer.Write("\r\u001b[2K");
            write(writer);
            if (_text is not null) writer.Write(_text);
            writer.Flush();
        }
    }
}

/// <summary>Writes log events to a <see cref="TextWriter"/> (stderr, or a test's capture), above the progress line if there is one.</summary>
public sealed class TextWriterSink(TextWriter writer, ITextFormatter formatter, ProgressLine? progress = null) : ILogEventSink
{
    private readonly Lock _lock = new();

    public void Emit(LogEvent logEvent)
    {
        if (progress is not null)
        {
            progress.Above(w => formatter.Format(logEvent, w));
            return;
        }
        lock (_lock)
        {
            formatter.Format(logEvent, writer);
            writer.Flush();
        }
    }
}
