using NameRnn.Worker;

using var cancellation = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    cancellation.Cancel();
};
return await WorkerProgram.RunAsync(args, Console.Error, cancellation.Token);
