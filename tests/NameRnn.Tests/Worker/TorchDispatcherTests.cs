using Akka.Actor;
using Akka.TestKit.Xunit2;
using NameRnn.Worker;

namespace NameRnn.Tests.Worker;

/// <summary>
/// Where the TorchSharp work runs: on a cluster node at a lower priority than the node's remoting (so
/// that a gradient on its way to another process does not wait behind it), in local mode at the
/// process's own, on no more threads than it is given. The niceness is read back from /proc for the
/// thread that ran the message.
/// </summary>
public class TorchDispatcherTests
{
    private sealed class ReportNice : ReceiveActor
    {
        public ReportNice() => ReceiveAny(_ => Sender.Tell(NiceOfThisThread()));
    }

    /// <summary>The calling thread's niceness, field 19 of /proc/thread-self/stat (counted after the name, which is in parentheses and may hold spaces).</summary>
    private static int NiceOfThisThread()
    {
        var stat = File.ReadAllText("/proc/thread-self/stat");
        return int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[16], System.Globalization.CultureInfo.InvariantCulture);
    }

    private static int NiceOfTorchWork(int? localThreads, int clusterNice = TorchDispatcher.WorkerNice)
    {
        using var kit = new TestKit(TorchDispatcher.Hocon(localThreads, clusterNice));
        var actor = kit.Sys.ActorOf(Props.Create(() => new ReportNice()).WithDispatcher(TorchDispatcher.Id));
        actor.Tell("nice?", kit.TestActor);
        return kit.ExpectMsg<int>(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public void Cluster_nodes_run_the_torch_work_nicer_than_the_process_the_coordinators_nicer_still()
    {
        var process = NiceOfThisThread();
        Assert.Equal(Math.Min(19, process + TorchDispatcher.WorkerNice), NiceOfTorchWork(localThreads: null));
        Assert.Equal(Math.Min(19, process + TorchDispatcher.CoordinatorNice), NiceOfTorchWork(localThreads: null, TorchDispatcher.CoordinatorNice));
    }

    [Fact]
    public void Local_mode_runs_the_torch_work_at_the_process_priority()
    {
        Assert.Equal(NiceOfThisThread(), NiceOfTorchWork(localThreads: 2));
    }

    private sealed class ReportThread : ReceiveActor
    {
        public ReportThread() => ReceiveAny(_ =>
        {
            Thread.Sleep(10);
            Sender.Tell(Environment.CurrentManagedThreadId);
        });
    }

    [Fact]
    public void Local_mode_shares_the_threads_it_is_given_among_all_its_actors()
    {
        // Five busy actors (a coordinator and four workers, say) on two threads: never a third thread
        // competing for two cores, and both threads at work.
        using var kit = new TestKit(TorchDispatcher.Hocon(localThreads: 2));
        var actors = Enumerable.Range(0, 5).Select(_ => kit.Sys.ActorOf(Props.Create(() => new ReportThread()).WithDispatcher(TorchDispatcher.Id))).ToList();
        for (var round = 0; round < 4; round++)
            foreach (var actor in actors) actor.Tell("thread?", kit.TestActor);
        var threads = Enumerable.Range(0, 20).Select(_ => kit.ExpectMsg<int>(TimeSpan.FromSeconds(10))).ToHashSet();
        Assert.Equal(2, threads.Count);
    }

    [Fact]
    public void A_cluster_node_runs_one_actors_messages_on_the_thread_that_ran_the_last_one()
    {
        // One worker slot, messages one at a time: the thread that went idle last takes the next, so the
        // node's other threads stay asleep (in a monitor's order each message went to the one that had
        // slept longest, round the three).
        using var kit = new TestKit(TorchDispatcher.Hocon(localThreads: null));
        var actor = kit.Sys.ActorOf(Props.Create(() => new ReportThread()).WithDispatcher(TorchDispatcher.Id));
        var threads = new HashSet<int>();
        for (var i = 0; i < 12; i++)
        {
            actor.Tell("thread?", kit.TestActor);
            threads.Add(kit.ExpectMsg<int>(TimeSpan.FromSeconds(10)));
            // Long enough for the thread to have gone idle before the next message comes.
            Thread.Sleep(30);
        }
        Assert.Single(threads);
    }

    [Fact]
    public void A_cluster_node_runs_as_many_busy_actors_at_once_as_it_has_threads_and_loses_no_message()
    {
        using var kit = new TestKit(TorchDispatcher.Hocon(localThreads: null));
        var actors = Enumerable.Range(0, 6).Select(_ => kit.Sys.ActorOf(Props.Create(() => new ReportThread()).WithDispatcher(TorchDispatcher.Id))).ToList();
        // Sent from several threads at once, as the remoting and the block links do.
        Parallel.For(0, 60, i => actors[i % actors.Count].Tell("thread?", kit.TestActor));
        var threads = Enumerable.Range(0, 60).Select(_ => kit.ExpectMsg<int>(TimeSpan.FromSeconds(10))).ToHashSet();
        Assert.Equal(TorchDispatcher.ClusterThreadCount, threads.Count);
        kit.ExpectNoMsg(TimeSpan.FromMilliseconds(100));
    }
}
