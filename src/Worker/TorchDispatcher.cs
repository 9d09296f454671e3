using Akka.Configuration;
using Akka.Dispatch;

namespace NameRnn.Worker;

/// <summary>
/// The dispatcher TorchSharp work runs on: threads of its own, so that a long step never holds a
/// thread of the default dispatcher (and its heartbeats). Two kinds, measured on a 2-core machine:
/// <list type="bullet">
/// <item>Local mode, where the coordinator and its workers hand work back and forth within one process
/// many times per step: Akka's fork-join dispatcher, a fixed set of dedicated threads, no more than the
/// cores, shared by the coordinator and the workers (<see cref="LocalThreads"/>). A thread that runs out
/// of work spins briefly before it sleeps, so it picks up the next message at once (local mode with 2
/// workers: about 15 % more names/s than with threads that sleep at once); and with no more threads
/// than cores, a thread that spins never takes the core of one that computes. (With a thread per actor,
/// Akka's pinned dispatcher until the eleventh session, the coordinator and two workers were three
/// busy threads on two cores: 17–26 % of the steps at global batch 64 took over 1.5 ms, against a
/// median of about 0.95 ms, and 10–11 % with the shared threads.)</item>
/// <item>Sleeping (<see cref="SleepingThreadsExecutor"/>) for cluster nodes, where several processes
/// share the cores: a spinning thread takes the CPU that the other workers and the remoting need
/// (cluster of 2 worker processes: about 40 % more names/s than with spinning threads). These threads
/// also run at a lower priority (<see cref="WorkerNice"/>, <see cref="CoordinatorNice"/>), so that the
/// remoting's and the direct links' short turns, which carry what the other workers wait for, get a core
/// at once instead of queueing behind the long computations, and the coordinator's evaluations give way
/// to the workers' steps where they share the cores.</item>
/// </list>
/// TorchSharp's dispose scopes are made and disposed inside one message, so an actor may move
/// between the dispatcher's threads.
/// </summary>
public static class TorchDispatcher
{
    public const string Id = "namernn-torch-dispatcher";

    /// <summary>A cluster node's threads: one per core and one more, so that the coordinator answers while every core computes.</summary>
    public static int ClusterThreadCount => Environment.ProcessorCount + 1;

    /// <summary>
    /// The niceness of a worker node's sleeping threads (Linux). With the same priority as the remoting's
    /// threads, a gradient on its way to another process waited for a core behind the TorchSharp work of
    /// the three processes (about 0.4 ms per turn of a remoting thread, several turns per message); 10
    /// gave a cluster of 2 worker processes on 2 cores 2–38 % more names/s in four alternating pairs of
    /// runs (19 about as much). With segments (fourteenth session) 0 measured no better.
    /// </summary>
    public const int WorkerNice = 10;

    /// <summary>
    /// The niceness of the coordinator node's sleeping threads in cluster mode. With segments the
    /// coordinator is off the steps' path, and its evaluations (and commits) are better done in the time
    /// the workers leave: 19 instead of 10 (a cluster of 2 worker processes at batch 256 on the same
    /// 2 cores, six alternating 16-epoch runs, median names/s of epochs 4-16: 71.0k / 72.6k / 70.4k /
    /// 74.1k / 74.7k / 71.6k against 59.8k / 82.9k / 55.2k / 67.3k / 69.0k / 70.0k).
    /// </summary>
    public const int CoordinatorNice = 19;

    /// <summary>
    /// The threads local mode shares among the coordinator and <paramref name="workers"/> workers: one
    /// each, but no more than the cores.
    /// </summary>
    public static int LocalThreads(int workers) => Math.Clamp(workers + 1, 1, Math.Max(1, Environment.ProcessorCount));

    /// <summary>
    /// The dispatcher's configuration: in local mode (<paramref name="localThreads"/> set) that many
    /// threads shared by the actors of the one process that does everything; on a cluster node (null)
    /// sleeping threads, <paramref name="clusterNice"/> nicer than the process.
    /// </summary>
    public static string Hocon(int? localThreads, int clusterNice = WorkerNice) => localThreads is { } threads
        ? $$"""
            {{Id}} {
              type = ForkJoinDispatcher
              dedicated-thread-pool {
                thread-count = {{Math.Max(1, threads)}}
                threadtype = background
              }
            }
            """
        : $$"""
            {{Id}} {
              type = Dispatcher
              executor = "{{typeof(SleepingThreadsExecutorConfigurator).AssemblyQualifiedName}}"
              thread-count = {{ClusterThreadCount}}
              thread-nice = {{clusterNice}}
            }
            """;
}

/// <summary>Makes the <see cref="SleepingThreadsExecutor"/> of a dispatcher with a <c>thread-count</c>.</summary>
public sealed class SleepingThreadsExecutorConfigurator(Config config, IDispatcherPrerequisites prerequisites)
    : ExecutorServiceConfigurator(config, prerequisites)
{
    public override ExecutorService Produce(string id) =>
        new SleepingThreadsExecutor(id, Math.Max(1, Config.GetInt("thread-count", Environment.ProcessorCount)), Config.GetInt("thread-nice", 0));
}

/// <summary>
/// A fixed set of background threads taking work from one queue; an idle thread waits without spinning.
/// New work wakes the thread that went idle last: with one busy actor (a worker node's slot) the same
/// thread runs every message, and the others stay asleep, instead of each message going to the thread
/// that has slept longest (a monitor's order), whose caches are coldest. On Linux the threads can run at
/// a lower priority than the rest of the process.
/// </summary>
public sealed class SleepingThreadsExecutor : ExecutorService
{
    /// <summary>An idle thread's own wake-up call.</summary>
    private sealed class Sleeper
    {
        public readonly object Gate = new();
        public bool Woken;
    }

    private readonly Queue<IRunnable> _queue = new();
    /// <summary>The idle threads, the one that went idle last on top.</summary>
    private readonly Stack<Sleeper> _idle = new();
    private readonly int _nice;
    private bool _stopped;

    /// <param name="nice">How much nicer than the process the threads are on Linux (0: the same priority; the result is at most 19, the lowest); ignored elsewhere.</param>
    public SleepingThreadsExecutor(string id, int threads, int nice = 0) : base(id)
    {
        _nice = Math.Clamp(nice, 0, 19);
        for (var i = 0; i < threads; i++)
            new Thread(Loop) { IsBackground = true, Name = $"{id}-{i}" }.Start();
    }

    public override void Execute(IRunnable run)
    {
        Sleeper? sleeper;
        lock (_queue)
        {
            if (_stopped) throw new RejectedExecutionException($"{Id} is shut down");
            _queue.Enqueue(run);
            _idle.TryPop(out sleeper);
        }
        if (sleeper is not null) Wake(sleeper);
    }

    public override void Shutdown()
    {
        Sleeper[] sleepers;
        lock (_queue)
        {
            _stopped = true;
            sleepers = _idle.ToArray();
            _idle.Clear();
        }
        foreach (var sleeper in sleepers) Wake(sleeper);
    }

    private static void Wake(Sleeper sleeper)
    {
        lock (sleeper.Gate)
        {
            sleeper.Woken = true;
            Monitor.Pulse(sleeper.Gate);
        }
    }

    private void Loop()
    {
        if (_nice > 0) ThreadNice.Lower(_nice);
        var me = new Sleeper();
        while (true)
        {
            IRunnable? run = null;
            lock (_queue)
            {
                if (_queue.Count > 0) run = _queue.Dequeue();
                else if (_stopped) return;
                else
                {
                    me.Woken = false;
                    _idle.Push(me);
                }
            }
            if (run is not null)
            {
                run.Run();
                continue;
            }
            lock (me.Gate)
                while (!me.Woken) Monitor.Wait(me.Gate);
        }
    }
}

/// <summary>The priority of the calling thread alone (Linux: a thread is a task with a nice value of its own).</summary>
public static class ThreadNice
{
    [System.Runtime.InteropServices.DllImport("libc")]
    private static extern int nice(int increment);

    /// <summary>
    /// Raises the calling thread's niceness by <paramref name="increment"/>, up to 19 (an unprivileged
    /// process may lower its priority; where it cannot, the thread keeps its priority). On Linux nice(2)
    /// acts on the calling thread, not on the whole process.
    /// </summary>
    public static void Lower(int increment)
    {
        if (!OperatingSystem.IsLinux()) return;
        try
        {
            nice(increment);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
        }
    }
}
