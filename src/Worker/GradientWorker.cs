using Akka.Actor;
using Akka.Event;
using NameRnn.Contracts;
using NameRnn.Model.Network;
using NameRnn.Model.Training;

namespace NameRnn.Worker;

/// <summary>
/// Computes gradients for the coordinator. It registers on start, builds its model when accepted,
/// keeps the last parameter version it was sent, and answers every <see cref="ComputeGradients"/> (a unit
/// of one or more micro-batches) with one <see cref="GradientsComputed"/>, their sum in the order of
/// <see cref="GradientTree"/>, or with <see cref="GradientsFailed"/>.
/// <para>
/// Given the run's state (<see cref="ReplicaState"/>), it also keeps a replica of the parameters: it sends
/// each block sum to the step's other replicas as well, and once it holds every block of a step it takes
/// the optimizer step itself (<see cref="ParameterReplica"/>, the same bits as the coordinator), so the next
/// step's work, handed out ahead, starts without waiting for the coordinator.
/// </para>
/// The TorchSharp work is synchronous inside the handler, on the dispatcher of its own.
/// </summary>
public sealed class GradientWorker : ReceiveActor, IWithTimers
{
    private static readonly TimeSpan RegistrationRetry = TimeSpan.FromSeconds(3);
    private const string RegisterTimer = "register";

    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly string _workerId;
    private readonly string _secret;
    private readonly WorkerFaults _faults;
    private readonly Hosting.RunIdEnricher? _runIdLog;
    private IActorRef? _coordinator;
    private GradientEngine? _engine;
    private string? _runId;
    private bool _failedOnce;
    private ParameterReplica? _replica;
    private readonly Dictionary<long, float[]> _versions = [];
    private readonly Dictionary<long, Dictionary<int, GradientsComputed>> _blocks = [];
    private readonly List<(ComputeGradients Work, IActorRef From, TimeSpan Since)> _deferred = [];
    private ReplicaState?[]? _stateParts;

    /// <summary>The generation of the coordinator's segments the replica follows; work and blocks of an older one are dropped.</summary>
    private long _generation;

    /// <summary>A segment in hand: the reports of its units done so far, and how many are left.</summary>
    private sealed class SegmentInHand(int units, IActorRef coordinator)
    {
        public IActorRef Coordinator { get; } = coordinator;
        public List<GradientsComputed> Reports { get; } = [];
        public int Left { get; set; } = units;
    }

    private readonly Dictionary<(long Step, int MicroBatch), SegmentInHand> _segmentOf = [];

    /// <summary>The versions at which the coordinator wants the replica's state, and where to send it.</summary>
    private readonly List<(long Version, IActorRef To)> _stateWanted = [];
    private readonly System.Diagnostics.Stopwatch _clock = System.Diagnostics.Stopwatch.StartNew();
    private readonly BlockLink? _link;

    public GradientWorker(IActorRef? coordinator, string workerId, string secret, WorkerFaults faults, Hosting.RunIdEnricher? runIdLog, BlockLink? link = null)
    {
        _link = link;
        _runIdLog = runIdLog;
        _coordinator = coordinator;
        _workerId = workerId;
        _secret = secret;
        _faults = faults;
        Receive<CoordinatorFound>(found =>
        {
            _coordinator = found.Coordinator;
            Register();
        });
        Receive<RetryRegistration>(_ => Register());
        Receive<WorkerAccepted>(OnAccepted);
        Receive<WorkerRefused>(refused =>
        {
            Timers.Cancel(RegisterTimer);
            _log.Error("Worker {Worker} refused by the coordinator: {Reason}", _workerId, refused.Reason);
        });
        Receive<ComputeGradients>(work => OnCompute(work, Sender));
        Receive<ComputeSegment>(OnSegment);
        Receive<GradientsComputed>(OnBlock);
        Receive<ReplicaState>(OnState);
        Receive<CheckDeferred>(_ => OnCheckDeferred());
    }

    /// <summary>
    /// How long work may wait for the blocks its parameter version needs, with the replica taking no step
    /// in that time, before the worker asks for the parameters instead. (Work handed out several steps
    /// ahead waits for the steps before it as long as they keep coming.)
    /// </summary>
    public static readonly TimeSpan ReplicaWait = TimeSpan.FromSeconds(2);

    /// <summary>When the replica last took a step or was set.</summary>
    private TimeSpan _replicaMoved;

    private const string DeferredTimer = "deferred";

    private sealed class CheckDeferred
    {
        public static readonly CheckDeferred Instance = new();
    }

    public ITimerScheduler Timers { get; set; } = null!;

    /// <summary>A worker that registers with <paramref name="coordinator"/> at once, or, when null, once told where it is.</summary>
    /// <param name="runIdLog">Set to the run the worker joins, so that the node's log events carry it.</param>
    /// <param name="link">The worker's direct link for block sums (cluster nodes), which it sends its blocks to its peers' links through when it can; its owner disposes of it.</param>
    public static Props Props(IActorRef? coordinator, string workerId, string secret = "", WorkerFaults? faults = null, Hosting.RunIdEnricher? runIdLog = null, BlockLink? link = null) =>
        Akka.Actor.Props.Create(() => new GradientWorker(coordinator, workerId, secret, faults ?? WorkerFaults.None, runIdLog, link)).WithDispatcher(TorchDispatcher.Id);

    protected override void PreStart()
    {
        if (_coordinator is not null) Register();
    }

    /// <summary>Registers, and again every few seconds until the coordinator answers.</summary>
    private void Register()
    {
        _coordinator?.Tell(new RegisterWorker(Protocol.Version, _workerId, ModelConfig.Format, _secret, _link?.Endpoint ?? ""));
        Timers.StartSingleTimer(RegisterTimer, RetryRegistration.Instance, RegistrationRetry);
    }

    private sealed class RetryRegistration
    {
        public static readonly RetryRegistration Instance = new();
    }

    protected override void PostStop() => _engine?.Dispose();

    private void OnAccepted(WorkerAccepted accepted)
    {
        Timers.Cancel(RegisterTimer);
        if (accepted.RunId == _runId && _engine is not null) return;
        var config = accepted.Model.ToConfig();
        if (config.Hash() != accepted.Model.Hash)
        {
            _log.Error("Worker {Worker} cannot build model {ModelHash}: this build computes {LocalHash} for it", _workerId, accepted.Model.Hash, config.Hash());
            return;
        }
        _engine?.Dispose();
        _engine = new GradientEngine(config, accepted.ClassWeights, accepted.Dropout, accepted.LabelSmoothing);
        DropReplica(generation: 0);
        _stateParts = null;
        _runId = accepted.RunId;
        if (_runIdLog is not null) _runIdLog.RunId = accepted.RunId;
        _log.Info("Worker {Worker} joined run {RunId}: {Cell} hidden {Hidden}", _workerId, accepted.RunId, config.Cell, config.Hidden);
    }

    /// <summary>
    /// A segment's units go the way of single ones, one after the other as the replica gets to their
    /// versions; their reports are kept until the last is done.
    /// </summary>
    private void OnSegment(ComputeSegment segment)
    {
        if (_engine is null || segment.RunId != _runId)
        {
            if (segment.Units.FirstOrDefault() is { } unit)
                Sender.Tell(new GradientsFailed(segment.RunId, unit.Step, unit.MicroBatch, $"worker {_workerId} has not joined run {segment.RunId}"));
            return;
        }
        // Of an older generation: the coordinator has gone back since, and sent the state anew.
        if (segment.Generation < _generation) return;
        if (segment.Generation > _generation || _replica is null || segment.Units.Any(u => u.Generation != segment.Generation))
        {
            var first = segment.Units.FirstOrDefault();
            _log.Warning("Worker {Worker} got a segment of generation {Generation} without the state it follows (its replica: generation {Own})", _workerId, segment.Generation, _generation);
            Sender.Tell(new ParametersMissing(segment.RunId, first?.Step ?? 0, first?.MicroBatch ?? 0, first?.ParametersVersion ?? 0));
            return;
        }
        var inHand = new SegmentInHand(segment.Units.Length, Sender);
        foreach (var unit in segment.Units) _segmentOf[(unit.Step, unit.MicroBatch)] = inHand;
        if (segment.StateAt >= 0) _stateWanted.Add((segment.StateAt, Sender));
        foreach (var unit in segment.Units) OnCompute(unit, Sender);
        SendWantedState();
    }

    private void OnCompute(ComputeGradients work, IActorRef sender)
    {
        if (_engine is null || work.RunId != _runId)
        {
            sender.Tell(new GradientsFailed(work.RunId, work.Step, work.MicroBatch, $"worker {_workerId} has not joined run {work.RunId}"));
            return;
        }
        if (work.Generation < _generation) return;
        if (work.Parameters is not null)
            _engine.LoadParameters(work.ParametersVersion, work.Parameters);
        else if (_engine.LoadedVersion != work.ParametersVersion && _versions.TryGetValue(work.ParametersVersion, out var known))
            _engine.LoadParameters(work.ParametersVersion, known);
        else if (_engine.LoadedVersion != work.ParametersVersion)
        {
            if (_replica is not null && work.ParametersVersion > _replica.Version)
            {
                // The replica gets there once the blocks of the steps before are in.
                _deferred.Add((work, sender, _clock.Elapsed));
                Timers.StartPeriodicTimer(DeferredTimer, CheckDeferred.Instance, ReplicaWait / 4);
                return;
            }
            sender.Tell(new ParametersMissing(work.RunId, work.Step, work.MicroBatch, work.ParametersVersion));
            return;
        }
        Compute(work, sender);
    }

    private void Compute(ComputeGradients work, IActorRef coordinator)
    {
        try
        {
            var last = work.MicroBatch + work.MicroBatches.Length - 1;
            if (_faults.FailAt is var (failStep, failMicroBatch) && failStep == work.Step && failMicroBatch >= work.MicroBatch && failMicroBatch <= last && !_failedOnce)
            {
                _failedOnce = true;
                throw new InvalidOperationException($"injected failure at step {work.Step} micro-batch {failMicroBatch}");
            }
            if (work.MicroBatches.Length == 0) throw new ArgumentException("a unit of work without micro-batches");
            var parts = _engine!.ComputeMany(work.MicroBatches.Select((part, i) => new MicroBatch(work.MicroBatch + i, part.Names, part.Labels, part.NoiseSeed)).ToList());
            var result = GradientTree.Reduce(parts);
            if (!double.IsFinite(result.LossSum) || !VectorMath.AllFinite(result.Gradients))
            {
                Answer(coordinator, new GradientsFailed(work.RunId, work.Step, work.MicroBatch, "non-finite loss or gradient"), parts.Count);
                return;
            }
            var answer = new GradientsComputed(work.RunId, work.Step, work.MicroBatch, work.MicroBatches.Length, result.LossSum, result.Count, result.Gradients, result.Correct,
                work.StepMicroBatches, work.LearningRate, work.Generation);
            // The peers first: they wait for it to take the step; the coordinator only keeps its own copy.
            var peers = work.Peers ?? [];
            for (var i = 0; i < peers.Length; i++)
                if (!peers[i].Equals(Self) && !SendDirectly(peers[i], work.PeerEndpoints is { } at && i < at.Length ? at[i] : "", answer))
                    Answer(peers[i], answer, parts.Count);
            if (_segmentOf.Remove((work.Step, work.MicroBatch), out var segment))
            {
                segment.Reports.Add(answer with { Gradients = [] });
                if (--segment.Left == 0) Answer(segment.Coordinator, new SegmentComputed(work.RunId, work.Generation, segment.Reports.ToArray()), parts.Count);
            }
            else
                Answer(coordinator, answer, parts.Count);
            // A straggler (tests only) takes its own steps late as well.
            if (peers.Contains(Self))
            {
                if (_faults.SlowDown > TimeSpan.Zero) Answer(Self, answer, parts.Count);
                else OnBlock(answer);
            }
        }
        catch (Exception e)
        {
            _log.Warning(e, "Worker {Worker} failed on step {Step} micro-batch {MicroBatch}", _workerId, work.Step, work.MicroBatch);
            coordinator.Tell(new GradientsFailed(work.RunId, work.Step, work.MicroBatch, e.Message));
        }
    }

    /// <summary>
    /// A block sum of a step, from a peer or this worker's own: once the replica has every block of the
    /// step at its version, it takes that step, and the work waiting for the new version runs.
    /// </summary>
    private void OnBlock(GradientsComputed block)
    {
        // A bound on what is kept: blocks more than a few steps ahead of the replica are dropped (it would then ask for the state).
        if (_replica is null || block.RunId != _runId || block.Generation != _generation || block.Step < _replica.Version || block.StepMicroBatches < 1) return;
        // Beyond the segments' steps (a few steps ahead without them), the worker asks for the state instead.
        if (block.Step > _replica.Version + (_generation > 0 ? SegmentReach : 4)) return;
        if (!_blocks.TryGetValue(block.Step, out var ofStep)) _blocks[block.Step] = ofStep = [];
        ofStep.TryAdd(block.MicroBatch, block);
        Advance();
    }

    private void Advance()
    {
        while (_replica is not null && _blocks.TryGetValue(_replica.Version, out var ofStep) && ofStep.Count > 0)
        {
            var any = ofStep.Values.First();
            if (ofStep.Values.Sum(b => b.MicroBatches) < any.StepMicroBatches) break;
            var step = _replica.Version;
            try
            {
                _replica.Apply(ofStep.Values.Select(b => new GradientBlock(b.MicroBatch, b.MicroBatches, new MicroBatchGradients(b.LossSum, b.Count, b.Gradients, b.Correct))).ToList(),
                    any.StepMicroBatches, any.LearningRate);
            }
            catch (ArgumentException e)
            {
                // Blocks that do not fit together (overlapping ones from another cut of the step): the coordinator's state will come instead.
                _log.Warning("Worker {Worker} cannot take step {Step} from its blocks: {Reason}", _workerId, step, e.Message);
                _blocks.Remove(step);
                break;
            }
            _blocks.Remove(step);
            _replicaMoved = _clock.Elapsed;
            Keep(_replica.Version, _replica.Parameters);
            SendWantedState();
        }
        RunDeferred();
    }

    /// <summary>Forgets the replica and everything held for it (versions, blocks, waiting work, segments, state requests), and follows <paramref name="generation"/> from now on.</summary>
    private void DropReplica(long generation)
    {
        _generation = generation;
        _replica = null;
        _versions.Clear();
        _blocks.Clear();
        _deferred.Clear();
        _segmentOf.Clear();
        _stateWanted.Clear();
        Timers.Cancel(DeferredTimer);
    }

    /// <summary>How far ahead of the replica a segment's blocks may come: the segments out, of at most so many steps each.</summary>
    private const int SegmentReach = Protocol.SegmentsOut * Protocol.MaxSegmentSteps;

    /// <summary>Sends the coordinator the replica's state at a version it asked for, once the replica is there.</summary>
    private void SendWantedState()
    {
        if (_replica is not { } replica) return;
        foreach (var (version, to) in _stateWanted.Where(w => w.Version <= replica.Version).ToList())
        {
            _stateWanted.Remove((version, to));
            if (version != replica.Version) continue;
            foreach (var message in ReplicaStates.ToMessages(_runId!, replica.Version, replica.Parameters, replica.OptimizerState,
                         replica.Momentum, replica.WeightDecay, replica.ClipNorm, _generation))
                to.Tell(message);
        }
    }

    /// <summary>Keeps the parameters of the newest two versions, so that a late unit of the step before can still be computed.</summary>
    private void Keep(long version, float[] parameters)
    {
        _versions[version] = parameters;
        foreach (var old in _versions.Keys.Where(v => v < version - 1).ToList()) _versions.Remove(old);
        foreach (var old in _blocks.Keys.Where(s => s < version).ToList()) _blocks.Remove(old);
    }

    private void RunDeferred()
    {
        foreach (var (work, from, _) in _deferred.Where(d => _versions.ContainsKey(d.Work.ParametersVersion)).ToList())
        {
            // Computing one may take the replica further and run the others already (through its own block).
            if (_deferred.RemoveAll(d => ReferenceEquals(d.Work, work)) == 0) continue;
            if (_engine!.LoadedVersion != work.ParametersVersion) _engine.LoadParameters(work.ParametersVersion, _versions[work.ParametersVersion]);
            Compute(work, from);
        }
        if (_deferred.Count == 0) Timers.Cancel(DeferredTimer);
    }

    /// <summary>
    /// Work that has waited too long for its version, with the replica stuck all that time (a block that
    /// never came), goes back: the coordinator then sends the state.
    /// </summary>
    private void OnCheckDeferred()
    {
        var now = _clock.Elapsed;
        TimeSpan Stuck(TimeSpan since) => now - (since > _replicaMoved ? since : _replicaMoved);
        foreach (var (work, from, since) in _deferred.Where(d => Stuck(d.Since) > ReplicaWait).ToList())
        {
            _deferred.RemoveAll(d => ReferenceEquals(d.Work, work));
            _log.Warning("Worker {Worker} waited {Seconds:F1} s for the blocks of step {Step}; it asks for the parameters", _workerId, Stuck(since).TotalSeconds, _replica?.Version ?? work.ParametersVersion - 1);
            from.Tell(new ParametersMissing(work.RunId, work.Step, work.MicroBatch, work.ParametersVersion));
        }
        if (_deferred.Count == 0) Timers.Cancel(DeferredTimer);
    }

    /// <summary>One part of the run's state; with all of them in, the replica starts (or jumps ahead) at that version.</summary>
    private void OnState(ReplicaState part)
    {
        if (_engine is null || part.RunId != _runId || !ReplicaStates.IsPart(part) || part.Generation < _generation) return;
        // Parts of another version, generation or cut start the set afresh.
        if (_stateParts is not { } parts || parts.Length != part.Parts || parts.OfType<ReplicaState>().Any(p => p.Version != part.Version || p.Generation != part.Generation))
            _stateParts = parts = new ReplicaState?[part.Parts];
        parts[part.Part] = part;
        if (parts.Any(p => p is null)) return;
        _stateParts = null;
        var parameters = parts[0]!.Values;
        if (parameters.Length != _engine.Config.ParameterCount)
        {
            _log.Warning("Worker {Worker} got a state of {Count} values for a model of {Parameters}", _workerId, parameters.Length, _engine.Config.ParameterCount);
            return;
        }
        // The coordinator went back to the state it holds: what was computed since is dropped.
        if (part.Generation > _generation) DropReplica(part.Generation);
        _versions[part.Version] = parameters;
        if (_replica is null || part.Version > _replica.Version)
        {
            try
            {
                _replica = ReplicaStates.ToReplica(parts!);
            }
            catch (ArgumentException e)
            {
                _log.Warning("Worker {Worker} cannot keep a replica: {Reason}", _workerId, e.Message);
                _replica = null;
                return;
            }
            _replicaMoved = _clock.Elapsed;
            Keep(part.Version, parameters);
        }
        Advance();
    }

    /// <summary>
    /// Sends a block to a peer's direct link, when the peer is on another node, it has a link and no
    /// straggling is simulated; false when the block is to go through Akka instead (a peer of this node
    /// gets it by reference).
    /// </summary>
    private bool SendDirectly(IActorRef peer, string endpoint, GradientsComputed block) =>
        _link is not null && _faults.SlowDown <= TimeSpan.Zero && endpoint.Length > 0 && peer is not IInternalActorRef { IsLocal: true } && _link.TrySend(endpoint, block);

    /// <summary>
    /// Sends the answer to a unit of <paramref name="microBatches"/> micro-batches; a worker told to
    /// straggle (tests only) sends it <see cref="WorkerFaults.SlowDown"/> later per micro-batch, by the
    /// scheduler, so that its dispatcher thread is not held.
    /// </summary>
    private void Answer(IActorRef to, object message, int microBatches)
    {
        if (_faults.SlowDown > TimeSpan.Zero)
            Context.System.Scheduler.ScheduleTellOnce(_faults.SlowDown * microBatches, to, message, Self);
        else
            to.Tell(message, Self);
    }
}
