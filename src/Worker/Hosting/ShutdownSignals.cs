using System.Runtime.InteropServices;

namespace NameRnn.Worker.Hosting;

/// <summary>
/// Ctrl-C and SIGTERM (docker stop, a Kubernetes pod's end, kill) for a program's whole life: the
/// first signal cancels <see cref="Token"/>, so that the work stops and shuts down in order instead
/// of dying mid-write; a second one ends the process at once.
/// </summary>
public sealed class ShutdownSignals : IDisposable
{
    private readonly CancellationTokenSource _cancellation = new();
    private readonly PosixSignalRegistration _interrupt;
    private readonly PosixSignalRegistration _terminate;

    public ShutdownSignals()
    {
        _interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
        _terminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
    }

    public CancellationToken Token => _cancellation.Token;

    private void Stop(PosixSignalContext context)
    {
        if (_cancellation.IsCancellationRequested) return;
        context.Cancel = true;
        _cancellation.Cancel();
    }

    public void Dispose()
    {
        _interrupt.Dispose();
        _terminate.Dispose();
        _cancellation.Dispose();
    }
}
