using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using NameRnn.Worker.Hosting;

namespace NameRnn.Worker;

/// <summary>Why a worker node shuts down when its coordinator stays unreachable (exit code 1).</summary>
public sealed class CoordinatorLostReason : CoordinatedShutdown.Reason
{
    public static readonly CoordinatorLostReason Instance = new();
    public override int ExitCode => 1;
}

/// <summary>Tells a worker where the coordinator is (local messages of the worker node only).</summary>
public sealed record CoordinatorFound(IActorRef Coordinator);

/// <summary>
/// A worker node's membership: it runs the node's gradient workers (its slots), watches the cluster
/// for a member with the coordinator role, finds the coordinator actor there and tells the slots
/// to register with it. When the coordinator leaves the cluster the node's work is done and it shuts
/// down, so that a restarted node joins the next coordinator's cluster afresh.
/// </summary>
public sealed class WorkerNode : ReceiveActor, IWithTimers
{
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Cluster _cluster = Cluster.Get(Context.System);
    private readonly int _slots;
    private readonly string _secret;
    private readonly WorkerFaults _faults;
    private readonly RunIdEnricher? _runId;
    private readonly List<IActorRef> _workers = [];
    private Address? _coordinatorAddress;
    private IActorRef? _coordinator;

    public WorkerNode(int slots, string secret, WorkerFaults faults, RunIdEnricher? runId)
    {
        _runId = runId;
        _slots = slots;
        _secret = secret;
        _faults = faults;
        Receive<ClusterEvent.MemberUp>(up => OnMemberUp(up.Member));
        Receive<ClusterEvent.MemberRemoved>(removed => OnMemberRemoved(removed.Member));
        Receive<ClusterEvent.UnreachableMember>(e =>
        {
            if (Equals(e.Member.Address, _coordinatorAddress))
                Timers.StartSingleTimer("coordinator-lost", CoordinatorLost.Instance, CoordinatorGrace);
        });
        Receive<ClusterEvent.ReachableMember>(e =>
        {
            if (Equals(e.Member.Address, _coordinatorAddress)) Timers.Cancel("coordinator-lost");
        });
        Receive<CoordinatorLost>(_ =>
        {
            _log.Warning("The coordinator node {Address} has been unreachable for {Seconds} s; this worker node shuts down", _coordinatorAddress, CoordinatorGrace.TotalSeconds);
            CoordinatedShutdown.Get(Context.System).Run(CoordinatorLostReason.Instance);
        });
        Receive<ClusterEvent.IMemberEvent>(_ => { });
        Receive<IdentifyCoordinator>(_ => Identify());
        Receive<ActorIdentity>(OnIdentity);
    }

    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(int slots, string secret, WorkerFaults faults, RunIdEnricher? runId = null) =>
        Akka.Actor.Props.Create(() => new WorkerNode(slots, secret, faults, runId));

    protected override void PreStart()
    {
        var node = $"{_cluster.SelfAddress.Host}:{_cluster.SelfAddress.Port}";
        for (var i = 1; i <= _slots; i++)
            _workers.Add(Context.ActorOf(GradientWorker.Props(null, $"{node}/{i}", _secret, _faults, _runId), $"slot-{i}"));
        _cluster.Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents,
            typeof(ClusterEvent.IMemberEvent), typeof(ClusterEvent.IReachabilityEvent));
    }

    protected override void PostStop() => _cluster.Unsubscribe(Self);

    private void OnMemberUp(Member member)
    {
        if (!member.HasRole(NameRnnHosting.CoordinatorRole) || _coordinatorAddress is not null) return;
        _coordinatorAddress = member.Address;
        _log.Info("Coordinator node {Address} is up; looking for its coordinator", member.Address);
        Identify();
    }

    private void Identify()
    {
        if (_coordinatorAddress is null || _coordinator is not null) return;
        Context.ActorSelection(new RootActorPath(_coordinatorAddress) / "user" / NameRnnHosting.CoordinatorName)
            .Tell(new Identify(_coordinatorAddress), Self);
        Timers.StartSingleTimer("identify", IdentifyCoordinator.Instance, TimeSpan.FromSeconds(1));
    }

    private void OnIdentity(ActorIdentity identity)
    {
        if (identity.Subject is null || _coordinator is not null || !Equals(identity.MessageId, _coordinatorAddress)) return;
        Timers.Cancel("identify");
        _coordinator = identity.Subject;
        _log.Info("Found the coordinator {Coordinator}; registering {Slots} worker(s)", _coordinator.Path, _slots);
        foreach (var worker in _workers) worker.Tell(new CoordinatorFound(_coordinator));
    }

    private void OnMemberRemoved(Member member)
    {
        if (!Equals(member.Address, _coordinatorAddress)) return;
        _log.Info("The coordinator node {Address} left the cluster; this worker node shuts down", member.Address);
        CoordinatedShutdown.Get(Context.System).Run(CoordinatedShutdown.ClrExitReason.Instance);
    }

    /// <summary>How long the coordinator may stay unreachable before this node gives up on it.</summary>
    private static readonly TimeSpan CoordinatorGrace = TimeSpan.FromSeconds(20);

    private sealed class CoordinatorLost
    {
        public static readonly CoordinatorLost Instance = new();
    }

    private sealed class IdentifyCoordinator
    {
        public static readonly IdentifyCoordinator Instance = new();
    }
}
