using System.Runtime.InteropServices;
using NameRnn.Coordinator.Cli;

using var cancellation = new CancellationTokenSource();
// Ctrl-C, and SIGTERM (docker stop, a Kubernetes pod's end, kill): stop the work and shut down in
// order instead of dying mid-write.
using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
using var terminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
return await App.RunAsync(args, Console.Out, Console.Error, cancellation.Token);

// The first signal asks for an orderly stop; a second one ends the process at once.
void Stop(PosixSignalContext context)
{
    if (cancellation.IsCancellationRequested) return;
    context.Cancel = true;
    cancellation.Cancel();
}
