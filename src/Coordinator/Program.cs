using NameRnn.Coordinator.Cli;
using NameRnn.Worker.Hosting;

using var signals = new ShutdownSignals();
return await App.RunAsync(args, Console.Out, Console.Error, signals.Token);
