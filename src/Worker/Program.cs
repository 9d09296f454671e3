using NameRnn.Worker;
using NameRnn.Worker.Hosting;

using var signals = new ShutdownSignals();
return await WorkerProgram.RunAsync(args, Console.Error, signals.Token);
