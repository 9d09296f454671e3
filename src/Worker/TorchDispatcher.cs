using Akka.Configuration;
using Akka.Dispatch;

namespace NameRnn.Worker;

/// <summary>
/// The dispatcher TorchSharp work runs on: threads of its own, so that a long step never holds a
/// thread of the default dispatcher (and its heartbeats). Two kinds, measured on a 2-core machine:
/// <list type="bullet">
/// <item>Spinning (Akka's pinned dispatcher, one thread per actor that spins between messages) for
/// local mode, where the coordinator and its workers hand work back and forth within one process
/// many times per step: a spinning thread picks up the next message at once (local mode with 2
/// workers: about 15 % more names/s than with sleeping threads).</item>
/// <item>Sleeping (<see cref="SleepingThreadsExecutor"/>) for cluster nodes, where several processes
/// share the cores: a spinning thread takes the CPU that the other workers and the remoting need
/// (cluster of 2 worker processes: about 40 % more names/s than with spinning threads).</item>
/// </list>
/// TorchSharp's dispose scopes are made and disposed inside one message, so an actor may move
/// between the sleeping dispatcher's threads.
/// </summary>
public static class TorchDispatcher
{
    public const string Id = "namernn-torch-dispatcher";

    /// <summary>One thread per core and one more, so that the coordinator answers while every core computes.</summary>
    public static int ThreadCount => Environment.ProcessorCount + 1;

    /// <summary>The dispatcher's configuration: spinning threads in one process that does everything, sleeping ones on a cluster node.</summary>
    public static string Hocon(bool spinning) => spinning
        ? $$"""
            {{Id}} {
              type = PinnedDispatcher
              executor = thread-pool-executor
            }
            """
        : $$"""
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
