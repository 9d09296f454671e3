using Akka.Configuration;
using Akka.Dispatch;

namespace NameRnn.Worker;

/// <summary>
/// The dispatcher TorchSharp work runs on: threads of its own, so that a long step never holds a
/// thread of the default dispatcher (and its heartbeats). Its idle threads sleep on a monitor:
/// Akka's pinned dispatcher spins between messages (sched_yield in a loop), which on a machine
/// with few cores takes the CPU that the other workers and the remoting need.
/// TorchSharp's dispose scopes are made and disposed inside one message, so an actor may move
/// between the dispatcher's threads.
/// </summary>
public static class TorchDispatcher
{
    public const string Id = "namernn-torch-dispatcher";

    /// <summary>One thread per core and one more, so that the coordinator answers while every core computes.</summary>
    public static int ThreadCount => Environment.ProcessorCount + 1;

    public static string Hocon => $$"""
        {{Id}} {
          type = Dispatcher
          executor = "{{typeof(SleepingThreadsExecutorConfigurator).AssemblyQualifiedName}}"
          thread-count = {{ThreadCount}}
        }
        """;
}

/// <summary>Makes the <see cref="SleepingThreadsExecutor"/> of a dispatcher with a <c>thread-count</c>.</summary>
public sealed class SleepingThreadsExecutorConfigurator(Config config, IDispatcherPrerequisites prerequisites)
    : ExecutorServiceConfigurator(config, prerequisites)
{
    public override ExecutorService Produce(string id) => new SleepingThreadsExecutor(id, Math.Max(1, Config.GetInt("thread-count", Environment.ProcessorCount)));
}

/// <summary>A fixed set of background threads taking work from one queue; an idle thread waits on a monitor without spinning.</summary>
public sealed class SleepingThreadsExecutor : ExecutorService
{

    private readonly Queue<IRunnable> _queue = new();
    private bool _stopped;

    public SleepingThreadsExecutor(string id, int threads) : base(id)
    {
        for (var i = 0; i < threads; i++)
            new Thread(Loop) { IsBackground = true, Name = $"{id}-{i}" }.Start();
    }

    public override void Execute(IRunnable run)
    {
        lock (_queue)
        {
            if (_stopped) throw new RejectedExecutionException($"{Id} is shut down");
            _queue.Enqueue(run);
            Monitor.Pulse(_queue);
        }
    }

    public override void Shutdown()
    {
        lock (_queue)
        {
            _stopped = true;
            Monitor.PulseAll(_queue);
        }
    }

    private void Loop()
    {
        while (true)
        {
            IRunnable run;
            lock (_queue)
            {
                while (_queue.Count == 0)
                {
                    if (_stopped) return;
                    Monitor.Wait(_queue);
                }
                run = _queue.Dequeue();
            }
            run.Run();
        }
    }
}
