using Akka.Actor;
using Akka.Cluster;
using Akka.Remote;

namespace NameRnn.Coordinator.Training;

/// <summary>A worker node stopped answering heartbeats (or answers again).</summary>
public sealed record NodeUnreachable(Address Address);
public sealed record NodeReachable(Address Address);

/// <summary>
/// Tells its parent, the coordinator, when a cluster node becomes unreachable or reachable again,
/// so that the node's outstanding work is given away at once; a node still unreachable after a
/// grace period is downed (the cluster has no automatic downing), so that it leaves the cluster
/// and its actors count as terminated.
/// </summary>
public sealed class ClusterWatcher : ReceiveActor, IWithTimers
{
    public static readonly TimeSpan DownAfter = TimeSpan.FromSeconds(10);

    private sealed record DownIfStillUnreachable(Address Address);

    private readonly Cluster _cluster = Cluster.Get(Context.System);

    public ITimerScheduler Timers { get; set; } = null!;

    public ClusterWatcher()
    {
        Receive<ClusterEvent.UnreachableMember>(e =>
        {
            Context.Parent.Tell(new NodeUnreachable(e.Member.Address));
            Timers.StartSingleTimer(e.Member.Address, new DownIfStillUnreachable(e.Member.Address), DownAfter);
        });
        Receive<ClusterEvent.ReachableMember>(e =>
        {
            Timers.Cancel(e.Member.Address);
            Context.Parent.Tell(new NodeReachable(e.Member.Address));
        });
        Receive<DownIfStillUnreachable>(d =>
        {
            if (_cluster.State.Unreachable.Any(m => m.Address.Equals(d.Address))) _cluster.Down(d.Address);
        });
        Receive<ClusterEvent.MemberRemoved>(e => Context.Parent.Tell(new NodeUnreachable(e.Member.Address)));
        // A worker process that dies closes its TCP connection at once: its work need not wait for
        // the failure detector. A new association (a node that is still alive) makes it usable again.
        Receive<DisassociatedEvent>(e => Context.Parent.Tell(new NodeUnreachable(e.RemoteAddress)));
        Receive<AssociatedEvent>(e =>
        {
            if (!_cluster.State.Unreachable.Any(m => m.Address.Equals(e.RemoteAddress)))
                Context.Parent.Tell(new NodeReachable(e.RemoteAddress));
        });
        Receive<ClusterEvent.IClusterDomainEvent>(_ => { });
    }

    public static Props Props() => Akka.Actor.Props.Create(() => new ClusterWatcher());

    protected override void PreStart()
    {
        _cluster.Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents,
            typeof(ClusterEvent.UnreachableMember), typeof(ClusterEvent.ReachableMember), typeof(ClusterEvent.MemberRemoved));
        Context.System.EventStream.Subscribe(Self, typeof(DisassociatedEvent));
        Context.System.EventStream.Subscribe(Self, typeof(AssociatedEvent));
    }

    protected override void PostStop()
    {
        _cluster.Unsubscribe(Self);
        Context.System.EventStream.Unsubscribe(Self);
    }
}
