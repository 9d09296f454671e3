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

/// <summary>
/// How a worker node's slots open their direct links for block sums (<see cref="BlockLink"/>): on the
/// address the node binds, with the cluster secret, for blocks up to the remote frame size; slot i on
/// port <see cref="FirstPort"/> + i − 1, or on any free port when <see cref="FirstPort"/> is 0.
/// </summary>
public sealed record BlockLinkOptions(string BindHost, string Secret, int MaxFrameSize, int FirstPort = 0)
{
    /// <summary>The port slot <paramref name="slot"/> (from 1) listens on; 0 for any free one.</summary>
    public int PortOf(int slot) => FirstPort == 0 ? 0 : FirstPort + slot - 1;
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
    private readonly BlockLinkOptions? _links;
    private readonly List<BlockLink> _openLinks = [];
    private Address? _coordinatorAddress;
    private IActorRef? _coordinator;

    public WorkerNode(int slots, string secret, WorkerFaults faults, RunIdEnricher? runId, BlockLinkOptions? links)
    {
        _links = links;
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

    /// <param name="links">Direct links for the slots' block sums; null: the blocks go through the remoting.</param>
    public static Props Props(int slots, string secret, WorkerFaults faults, RunIdEnricher? runId = null, BlockLinkOptions? links = null) =>
        Akka.Actor.Props.Create(() => new WorkerNode(slots, secret, faults, runId, links));

    protected override void PreStart()
    {
        var node = $"{_cluster.SelfAddress.Host}:{_cluster.SelfAddress.Port}";
        var bind = _links is null ? null : BindAddress(_links.BindHost);
        for (var i = 1; i <= _slots; i++)
        {
            // The link's threads are made here, on a thread of normal priority, not on a TorchSharp thread (nice 10) of the worker's.
            IActorRef? worker = null;
            var link = bind is null ? null : OpenLink(bind, _links!.PortOf(i), $"{node}/{i}", block => worker?.Tell(block, ActorRefs.NoSender));
            worker = Context.ActorOf(GradientWorker.Props(null, $"{node}/{i}", _secret, _faults, _runId, link), $"slot-{i}");
            _workers.Add(worker);
        }
        _cluster.Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents,
            typeof(ClusterEvent.IMemberEvent), typeof(ClusterEvent.IReachabilityEvent));
    }

    /// <summary>The address the slots' links listen on: the node's own; null when it does not resolve (the blocks then go through the remoting).</summary>
    private System.Net.IPAddress? BindAddress(string host)
    {
        if (System.Net.IPAddress.TryParse(host, out var address)) return address;
        try
        {
            return System.Net.Dns.GetHostAddresses(host).OrderBy(a => a.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 0 : 1).First();
        }
        catch (Exception e) when (e is System.Net.Sockets.SocketException or ArgumentException or InvalidOperationException)
        {
            _log.Warning("The worker node cannot listen for blocks on {Host} ({Reason}); its peers send them through the remoting", host, e.Message);
            return null;
        }
    }

    /// <summary>A slot's direct link, or null (it could not listen: the blocks then go through the remoting).</summary>
    private BlockLink? OpenLink(System.Net.IPAddress bind, int port, string workerId, Action<Contracts.GradientsComputed> deliver)
    {
        var options = _links!;
        var log = _log;
        // The serializer the remoting already has for the protocol's messages.
        var serializer = (Contracts.NameRnnSerializer)Context.System.Serialization.FindSerializerForType(typeof(Contracts.GradientsComputed));
        try
        {
            var link = new BlockLink(bind, _cluster.SelfAddress.Host!, options.Secret, options.MaxFrameSize, serializer.BlockFromBinary, serializer.ToBinary, deliver,
                warning => log.Warning("Worker {Worker}: {Problem}", workerId, warning), note => log.Info("Worker {Worker} {Note}", workerId, note), port: port);
            _openLinks.Add(link);
            return link;
        }
        catch (System.Net.Sockets.SocketException e)
        {
            _log.Warning("Worker {Worker} cannot listen for blocks on {Address} port {Port} ({Reason}); its peers send them through the remoting", workerId, bind, port == 0 ? "any" : port.ToString(System.Globalization.CultureInfo.InvariantCulture), e.Message);
            return null;
        }
    }

    protected override void PostStop()
    {
        _cluster.Unsubscribe(Self);
        foreach (var link in _openLinks) link.Dispose();
    }

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
