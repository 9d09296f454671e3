using System.Diagnostics;
using System.Text.Json;
using Akka.Actor;
using Akka.Event;
using NameRnn.Contracts;
using NameRnn.Model.Network;
using NameRnn.Model.Training;
using NameRnn.Worker;

namespace NameRnn.Coordinator.Training;

/// <summary>
/// Runs the synchronous data-parallel protocol over whatever workers have registered: it cuts the
/// current step's micro-batches into units of work (aligned blocks of <see cref="GradientTree"/>, about
/// one per live worker), hands them to idle workers (with the parameters where the worker lacks that
/// version), takes the first reply for each (step, unit) and drops the rest, and when every unit of
/// the step is in lets <see cref="TrainingRun"/> add their sums up the tree and step the optimizer.
/// A worker adds its unit's micro-batches itself, so each sends one gradient per step. With replicas
/// (<see cref="TrainingPlan.Replicas"/>) the workers also send their block sums to each other and take
/// each step themselves, and the next step's units go out before this step is in, so that a step costs
/// one message hop; the coordinator still applies every step to its own copy, and sends that state to a
/// worker that joins or falls behind. Work of a worker that dies, becomes unreachable or takes too
/// long goes to the others; a failing unit is retried on another worker. After each epoch it evaluates on the
/// validation split and keeps the best parameters; checkpoints let a run continue exactly; at the
/// end it evaluates the best parameters on the test split, once.
/// </summary>
public sealed partial class TrainingCoordinator : ReceiveActor, IWithTimers
{
    private static readonly TimeSpan TickInterval = TimeSpan.FromMilliseconds(200);
    private static readonly TimeSpan WaitingLogInterval = TimeSpan.FromSeconds(5);

    private sealed class WorkerState(string id, Address address)
    {
        public string Id { get; } = id;
        public Address Address { get; } = address;
        public HashSet<(long Step, int MicroBatch)> Outstanding { get; } = [];
        /// <summary>The parameter version the worker has loaded, as far as the coordinator sent it.</summary>
        public long KnownVersion { get; set; } = -1;
        /// <summary>The version of the worker's replica once the blocks of the steps it takes part in are in; −1 when it has none (see <see cref="ReplicaState"/>).</summary>
        public long ReplicaVersion { get; set; } = -1;
        public bool Suspended { get; set; }
        /// <summary>The host:port of the worker's direct link for block sums (see <see cref="RegisterWorker.BlockEndpoint"/>), "" for none.</summary>
        public string BlockEndpoint { get; set; } = "";
        public bool IdleIn(long step) => !Suspended && HeldOf(step) == 0;
        public int HeldOf(long step) => Outstanding.Count(o => o.Step == step);
        public bool CanTake(int depth, long step) => !Suspended && HeldOf(step) < depth;
    }

    /// <summary>
    /// One step's work: its micro-batches cut into units, what became of each unit, and, with replicas,
    /// the workers that take the step themselves from its blocks: <see cref="Peers"/> are named in every
    /// assignment of the step and get each block from the worker that computed it; <see cref="LatePeers"/>
    /// came in after work was handed out, and the coordinator forwards them every block it accepts.
    /// </summary>
    private sealed class StepWork
    {
        public StepWork(long step, IReadOnlyList<MicroBatch> microBatches, IReadOnlyList<(int First, int MicroBatches)> units, double learningRate, IEnumerable<IActorRef> peers)
        {
            Step = step;
            MicroBatches = microBatches;
            Units = units;
            LearningRate = learningRate;
            var n = units.Count;
            Results = new GradientBlock?[n];
            ComputedBy = new string?[n];
            Failures = new int[n];
            FailedOn = Enumerable.Range(0, n).Select(_ => new HashSet<IActorRef>()).ToArray();
            InFlight = Enumerable.Range(0, n).Select(_ => new List<(IActorRef, TimeSpan)>()).ToArray();
            Pending = Enumerable.Range(0, n).ToList();
            Peers = peers.ToHashSet();
        }

        public long Step { get; }
        public IReadOnlyList<MicroBatch> MicroBatches { get; }
        public IReadOnlyList<(int First, int MicroBatches)> Units { get; }
        public double LearningRate { get; }
        public GradientBlock?[] Results { get; }
        public string?[] ComputedBy { get; }
        public int[] Failures { get; }
        public HashSet<IActorRef>[] FailedOn { get; }
        public List<(IActorRef Worker, TimeSpan Since)>[] InFlight { get; }
        public List<int> Pending { get; }
        public List<double> Durations { get; } = [];
        public int Received { get; set; }
        public HashSet<IActorRef> Peers { get; }
        public HashSet<IActorRef> LatePeers { get; } = [];
        public List<GradientsComputed> Accepted { get; } = [];
        /// <summary>Whether any of the step's work has gone out (with the <see cref="Peers"/> of the time).</summary>
        public bool HandedOut { get; set; }
        public bool Complete => Received == Results.Length;
        public IActorRef[] AllPeers => Peers.Concat(LatePeers).ToArray();
        public bool IsPeer(IActorRef worker) => Peers.Contains(worker) || LatePeers.Contains(worker);

        /// <summary>The unit that starts at <paramref name="microBatch"/>, or −1.</summary>
        public int UnitAt(int microBatch)
        {
            for (var i = 0; i < Units.Count; i++)
                if (Units[i].First == microBatch) return i;
            return -1;
        }

        /// <summary>The micro-batches of a unit.</summary>
        public IEnumerable<MicroBatch> BatchesOf(int unit) => MicroBatches.Skip(Units[unit].First).Take(Units[unit].MicroBatches);

        /// <summary>"micro-batch 3" or "micro-batches 4-7": a unit for the log.</summary>
        public string Describe(int unit) => (Units[unit].MicroBatches == 1 ? "micro-batch " : "micro-batches ") + Range(unit);

        public string Range(int unit) => Units[unit] is var (first, count) && count == 1 ? $"{first}" : $"{first}-{first + count - 1}";

        /// <summary>Puts a unit back in line unless it is done, waiting, or still being computed elsewhere.</summary>
        public void Requeue(int unit)
        {
            if (Results[unit] is not null || Pending.Contains(unit) || InFlight[unit].Count > 0) return;
            var at = Pending.FindIndex(i => i > unit);
            Pending.Insert(at < 0 ? Pending.Count : at, unit);
        }
    }

    private sealed class Tick
    {
        public static readonly Tick Instance = new();
    }

    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly TrainingPlan _plan;
    private readonly IActorRef? _recorder;
    private readonly Dictionary<IActorRef, WorkerState> _workers = [];
    private readonly List<IActorRef> _workerOrder = [];
    private readonly Dictionary<string, int> _completedByWorker = [];
    private readonly List<EpochSummary> _epochs = [];
    private readonly Stopwatch _trainClock = new();
    private readonly Stopwatch _epochClock = new();
    private readonly Stopwatch _stepClock = new();
    private readonly ModelSpec _spec;
    private readonly float[]? _classWeights;
    private TrainingRun? _run;
    private Evaluator? _evaluator;
    private IActorRef? _requester;

    /// <summary>The step being computed, whose parameters the coordinator has.</summary>
    private StepWork? _current;
    /// <summary>
    /// The steps after it, in order, whose micro-batches are cut already: with replicas up to
    /// <see cref="TrainingPlan.StepsAhead"/> of them, handed out ahead to the workers that will take the
    /// steps before themselves; without, the next one, cut while the current one is computed.
    /// </summary>
    private readonly List<StepWork> _ahead = [];

    private double _epochLossSum;
    private int _epochNames;
    private int _epochCorrect;
    private readonly Stopwatch _thisStep = new();

    /// <summary>
    /// Steps go to the recorder this many at a time, or once <see cref="RecordInterval"/> has passed
    /// since the last ones went (a slow model's progress still shows), and at every epoch's end.
    /// </summary>
    public const int RecordEvery = 16;

    private static readonly TimeSpan RecordInterval = TimeSpan.FromMilliseconds(100);
    private readonly List<Runs.StepRecorded> _unrecorded = [];
    private readonly Stopwatch _sinceRecorded = Stopwatch.StartNew();
    private float[]? _bestParameters;
    private ClassificationReport? _bestValidation;
    private int _bestEpoch = -1;
    private long _trainedNames;
    private double _previousTrainSeconds;
    private bool _stopEarly;
    private readonly Stopwatch _waitingSince = new();
    private TimeSpan _lastWaitingLog;

    public TrainingCoordinator(TrainingPlan plan, IActorRef? recorder)
    {
        _plan = plan;
        _recorder = recorder;
        _spec = plan.Model.ToSpec();
        _classWeights = plan.ClassWeights();
        Receive<StartTraining>(_ => OnStart());
        Receive<RegisterWorker>(OnRegister);
        Receive<GradientsComputed>(OnComputed);
        Receive<GradientsFailed>(OnFailed);
        Receive<ParametersMissing>(OnParametersMissing);
        Receive<SegmentComputed>(OnSegmentComputed);
        Receive<ReplicaState>(OnWorkerState);
        Receive<Terminated>(t => OnWorkerGone(t.ActorRef));
        Receive<NodeUnreachable>(e => OnNodeUnreachable(e.Address));
        Receive<NodeReachable>(e => OnNodeReachable(e.Address));
        Receive<Tick>(_ => OnTick());
    }

    public ITimerScheduler Timers { get; set; } = null!;

    /// <param name="recorder">Gets every step in <see cref="Runs.StepsRecorded"/> (see <see cref="RecordEvery"/>) and an <see cref="Runs.EpochRecorded"/> per epoch, if given.</param>
    public static Props Props(TrainingPlan plan, IActorRef? recorder = null) =>
        Akka.Actor.Props.Create(() => new TrainingCoordinator(plan, recorder)).WithDispatcher(TorchDispatcher.Id);

    protected override void PreStart()
    {
        _stepClock.Start();
        if (Context.System.Settings.ProviderClass.Contains("Cluster", StringComparison.Ordinal))
            Context.ActorOf(ClusterWatcher.Props(), "cluster-watcher");
        Timers.StartPeriodicTimer("tick", Tick.Instance, TickInterval);
    }

    protected override void PostStop() => _evaluator?.Dispose();

    private bool Started => _run is not null;
    private int LiveWorkers => _workers.Values.Count(w => !w.Suspended);
    private TimeSpan Now => _stepClock.Elapsed;
    private IEnumerable<StepWork> Steps => _current is null ? _ahead : _ahead.Prepend(_current);

    private void OnStart()
    {
        _requester = Sender;
        _waitingSince.Restart();
        TryBegin();
    }

    private void OnRegister(RegisterWorker register)
    {
        var refusal = register.ProtocolVersion != Protocol.Version
            ? $"protocol version {register.ProtocolVersion}, the coordinator speaks {Protocol.Version}"
            : register.ModelFormat != ModelConfig.Format
                ? $"model format {register.ModelFormat}, the coordinator's is {ModelConfig.Format} (another build of NameRnn?)"
                : !SecretMatches(register.Secret)
                    ? "wrong or missing cluster secret"
                    : null;
        if (refusal is not null)
        {
            _log.Warning("Refused worker {Worker} at {Address}: {Reason}", register.WorkerId, Sender.Path, refusal);
            Sender.Tell(new WorkerRefused(refusal));
            return;
        }
        if (!_workers.ContainsKey(Sender))
        {
            _workers[Sender] = new WorkerState(register.WorkerId, Sender.Path.Address);
            _workerOrder.Add(Sender);
            if (_completedByWorker.TryAdd(register.WorkerId, 0) && Started)
                _log.Info("Worker {Worker} joined mid-run at step {Step}", register.WorkerId, _run!.Step);
            Context.Watch(Sender);
            _log.Info("Worker {Worker} registered ({Workers} live)", register.WorkerId, LiveWorkers);
            _waitingSince.Restart();
        }
        _workers[Sender].BlockEndpoint = register.BlockEndpoint;
        Sender.Tell(new WorkerAccepted(_plan.RunId, _spec, _classWeights, _plan.Options.Dropout, _plan.Options.LabelSmoothing));
        if (Started) Dispatch();
        else TryBegin();
    }

    private bool SecretMatches(string secret) =>
        System.Security.Cryptography.CryptographicOperations.FixedTimeEquals(
            System.Text.Encoding.UTF8.GetBytes(secret), System.Text.Encoding.UTF8.GetBytes(_plan.ClusterSecret));

    private void TryBegin()
    {
        if (Started || _requester is null || LiveWorkers < _plan.MinWorkers) return;
        _evaluator = new Evaluator(_plan.Model, _plan.Labels);
        if (_plan.Resume is { } resume)
        {
            _run = new TrainingRun(_plan.Options, _plan.Model, _plan.Train, resume.State);
            Restore(resume);
            _log.Info("Run {RunId} resumes at epoch {Epoch}, step {Step} of {Steps}", _plan.RunId, _run.Epoch + 1, _run.Step, _run.TotalSteps);
        }
        else
        {
            _run = new TrainingRun(_plan.Options, _plan.Model, _plan.Train, _plan.InitialParameters());
        }
        _log.Info("Run {RunId}: {Names} training names, {Steps} steps per epoch, {Epochs} epochs, {Workers} workers",
            _plan.RunId, _plan.Train.Count, _run.StepsPerEpoch, _plan.Options.Epochs, LiveWorkers);
        _trainClock.Start();
        _epochClock.Restart();
        _committedAt = Now;
        if (_run.Finished) Finish();
        else if (SegmentMode) DispatchSegments();
        else BeginStep();
    }

    /// <summary>
    /// Makes the next step current (the one handed out ahead, when there is one), then hands out its
    /// units and the next step's.
    /// </summary>
    private void BeginStep()
    {
        var run = _run!;
        if (_ahead.Count > 0 && _ahead[0].Step == run.Step)
        {
            _current = _ahead[0];
            _ahead.RemoveAt(0);
        }
        else
        {
            _ahead.Clear();
            _current = NewStep(run.Step, _plan.Replicas ? _workerOrder.Where(w => !_workers[w].Suspended && _workers[w].ReplicaVersion == run.Step) : []);
        }
        _thisStep.Restart();
        // Every reply of a step handed out ahead may be in already.
        if (_current.Complete) CompleteStep();
        else Dispatch();
    }

    private StepWork NewStep(long step, IEnumerable<IActorRef> peers)
    {
        var microBatches = _run!.MicroBatchesOf(step);
        return new StepWork(step, microBatches, GradientTree.Units(microBatches.Count, LiveWorkers, _plan.LargestUnit), _run.LearningRateOf(step), peers);
    }

    /// <summary>
    /// Sends a worker the run's state at the current version, so that it keeps a replica from now on. It
    /// becomes a peer of the current step (and of the next, if there is one); of a step whose work is out
    /// already it becomes a late peer, and the coordinator forwards it the blocks instead.
    /// </summary>
    private void SendState(IActorRef worker)
    {
        var run = _run!;
        TellRunState(worker);
        _workers[worker].ReplicaVersion = run.ParametersVersion;
        foreach (var step in Steps)
        {
            if (!step.HandedOut)
            {
                step.Peers.Add(worker);
                continue;
            }
            // It may have missed blocks sent to it before: it gets them all again from here.
            step.Peers.Remove(worker);
            step.LatePeers.Add(worker);
            foreach (var block in step.Accepted) worker.Tell(block);
        }
    }

    /// <summary>The run's state at its current version, in parts (<see cref="ReplicaStates"/>), to a worker that is to keep a replica.</summary>
    private void TellRunState(IActorRef worker, long generation = 0)
    {
        var run = _run!;
        var options = _plan.Options;
        foreach (var message in ReplicaStates.ToMessages(_plan.RunId, run.ParametersVersion, run.Parameters, run.OptimizerState,
                     options.Momentum, options.WeightDecay, options.ClipNorm, generation))
            worker.Tell(message);
    }

    /// <summary>
    /// Gives pending units of the current step, lowest index first, to the workers with the least work of
    /// the step in hand, up to <see cref="TrainingPlan.PipelineDepth"/> each; a retried one goes to a worker it has not
    /// failed on when there is one. Ties go by worker id, not by the order in which workers happened to
    /// register. With replicas, a live worker that will not have the current version on its own gets the
    /// run's state first, and the next step's units go out ahead to the workers that will take the current
    /// step themselves. Without replicas the next step goes out only once this one is applied, but its
    /// micro-batches are cut once the first block of this one is in, while the other workers still
    /// compute, not after.
    /// </summary>
    private void Dispatch()
    {
        if (SegmentMode)
        {
            DispatchSegments();
            return;
        }
        if (!Started || _requester is null || _current is not { } current) return;
        if (_plan.Replicas)
            foreach (var worker in _workerOrder.Where(w => !_workers[w].Suspended && _workers[w].ReplicaVersion != current.Step).ToList())
                SendState(worker);
        DispatchStep(current, _ => true);
        if (current.Pending.Count > 0 || _stopEarly || (!_plan.Replicas && current.Received == 0)) return;
        // The steps before the next one to hand out, from the current one on.
        List<StepWork> before = [current];
        for (var k = 1; k <= (_plan.Replicas ? _plan.StepsAhead : 1) && current.Step + k < _run!.TotalSteps; k++)
        {
            if (_ahead.Count < k) _ahead.Add(NewStep(current.Step + k, before[^1].AllPeers.Where(w => _workers.ContainsKey(w))));
            if (!_plan.Replicas) return;
            var step = _ahead[k - 1];
            // Those that will have the step's version on their own: replicas at the current version, peers of every step before it.
            DispatchStep(step, w => _workers[w].ReplicaVersion == current.Step && before.All(s => s.IsPeer(w)));
            if (step.Pending.Count > 0) return;
            before.Add(step);
        }
    }

    private void DispatchStep(StepWork step, Func<IActorRef, bool> eligible)
    {
        foreach (var index in step.Pending.ToList())
        {
            var open = _workerOrder.Where(w => _workers[w].CanTake(_plan.PipelineDepth, step.Step) && eligible(w))
                .OrderBy(w => _workers[w].HeldOf(step.Step)).ThenBy(w => _workers[w].Outstanding.Count).ThenBy(w => _workers[w].Id, StringComparer.Ordinal).ToList();
            if (open.Count == 0) break;
            var worker = open.FirstOrDefault(w => !step.FailedOn[index].Contains(w)) ?? open[0];
            step.Pending.Remove(index);
            Assign(worker, step, index);
        }
    }

    private void Assign(IActorRef worker, StepWork step, int unit)
    {
        var run = _run!;
        var state = _workers[worker];
        float[]? parameters = null;
        if (!_plan.Replicas && state.KnownVersion != run.ParametersVersion)
        {
            parameters = run.Parameters;
            state.KnownVersion = run.ParametersVersion;
        }
        state.Outstanding.Add((step.Step, step.Units[unit].First));
        step.HandedOut = true;
        step.InFlight[unit].Add((worker, Now));
        var work = step.BatchesOf(unit).Select(b => new MicroBatchWork(b.Names, b.Labels, b.NoiseSeed)).ToArray();
        var peers = _plan.Replicas ? step.AllPeers : null;
        worker.Tell(new ComputeGradients(_plan.RunId, step.Step, step.Units[unit].First, step.Step, parameters, work,
            step.MicroBatches.Count, step.LearningRate, peers, peers?.Select(p => _workers.GetValueOrDefault(p)?.BlockEndpoint ?? "").ToArray()));
    }

    private StepWork? StepOf(long step) => _current?.Step == step ? _current : _ahead.Find(s => s.Step == step);

    /// <summary>A reply frees its worker whatever it says, for whichever step.</summary>
    private TimeSpan? Release(long stepNumber, int microBatch)
    {
        if (_workers.TryGetValue(Sender, out var state)) state.Outstanding.Remove((stepNumber, microBatch));
        if (!Started || StepOf(stepNumber) is not { } step || step.UnitAt(microBatch) is var unit && unit < 0) return null;
        var entry = step.InFlight[unit].FindIndex(e => e.Worker.Equals(Sender));
        if (entry < 0) return null;
        var since = step.InFlight[unit][entry].Since;
        step.InFlight[unit].RemoveAt(entry);
        return Now - since;
    }

    /// <summary>The step and unit a reply is for, when it is the first reply for a unit of a step in hand; else null (a late, duplicate or foreign one is dropped).</summary>
    private (StepWork Step, int Unit)? OpenUnit(string runId, long stepNumber, int microBatch) =>
        runId == _plan.RunId && Started && StepOf(stepNumber) is { } step && step.UnitAt(microBatch) is var unit && unit >= 0 && step.Results[unit] is null
            ? (step, unit)
            : null;

    private void OnComputed(GradientsComputed reply)
    {
        var took = Release(reply.Step, reply.MicroBatch);
        if (OpenUnit(reply.RunId, reply.Step, reply.MicroBatch) is not var (step, unit))
        {
            _log.Debug("Dropped a late or duplicate reply for step {Step} micro-batch {MicroBatch}", reply.Step, reply.MicroBatch);
            Dispatch();
            return;
        }
        var (first, count) = step.Units[unit];
        if (reply.MicroBatches != count || reply.Count != step.BatchesOf(unit).Sum(b => b.Names.Length) || reply.Gradients.Length != _plan.Model.ParameterCount)
        {
            _log.Warning("Dropped a malformed reply for step {Step} {Unit}: {MicroBatches} micro-batches, {Count} names, {Values} values",
                reply.Step, step.Describe(unit), reply.MicroBatches, reply.Count, reply.Gradients.Length);
            step.Requeue(unit);
            Dispatch();
            return;
        }
        step.Results[unit] = new GradientBlock(first, count, new MicroBatchGradients(reply.LossSum, reply.Count, reply.Gradients, reply.Correct));
        step.ComputedBy[unit] = _workers.GetValueOrDefault(Sender)?.Id;
        step.Pending.Remove(unit);
        if (took is { } t) step.Durations.Add(t.TotalSeconds);
        step.Received++;
        if (_plan.Replicas)
        {
            // Kept for workers that become peers later; with what taking the step needs, as the coordinator knows it.
            var block = reply with { StepMicroBatches = step.MicroBatches.Count, LearningRate = step.LearningRate };
            step.Accepted.Add(block);
            foreach (var peer in step.LatePeers.Where(p => !p.Equals(Sender))) peer.Tell(block);
        }
        if (step == _current && step.Complete) CompleteStep();
        else Dispatch();
    }

    private void OnFailed(GradientsFailed failed)
    {
        if (SegmentMode)
        {
            OnSegmentFailed(failed);
            return;
        }
        Release(failed.Step, failed.MicroBatch);
        if (OpenUnit(failed.RunId, failed.Step, failed.MicroBatch) is not var (step, index))
        {
            Dispatch();
            return;
        }
        step.Failures[index]++;
        step.FailedOn[index].Add(Sender);
        _log.Warning("{Unit} of step {Step} failed on {Worker} (failure {Failures} of at most {Attempts}): {Reason}",
            step.Describe(index), failed.Step, _workers.GetValueOrDefault(Sender)?.Id ?? Sender.Path.ToString(), step.Failures[index], _plan.MaxAttemptsPerMicroBatch, failed.Reason);
        if (step.Failures[index] >= _plan.MaxAttemptsPerMicroBatch)
        {
            var names = string.Join(", ", step.BatchesOf(index).SelectMany(b => b.Names));
            Fail($"{step.Describe(index)} of step {failed.Step} failed {step.Failures[index]} times (last: {failed.Reason}); its names: {names}");
            return;
        }
        step.Requeue(index);
        Dispatch();
    }

    /// <summary>
    /// The worker lacks the version a unit needs (a block it waited for never came, or it lost its state):
    /// the unit goes back in line, and the worker gets the run's state with its next work.
    /// </summary>
    private void OnParametersMissing(ParametersMissing missing)
    {
        if (SegmentMode)
        {
            if (missing.RunId == _plan.RunId) LeaveLineage(Sender, $"worker {_workers.GetValueOrDefault(Sender)?.Id ?? Sender.Path.ToString()} lacks the state of step {missing.ParametersVersion}");
            Dispatch();
            return;
        }
        if (_workers.TryGetValue(Sender, out var state))
        {
            state.KnownVersion = -1;
            state.ReplicaVersion = -1;
        }
        Release(missing.Step, missing.MicroBatch);
        if (OpenUnit(missing.RunId, missing.Step, missing.MicroBatch) is var (step, unit)) step.Requeue(unit);
        Dispatch();
    }

    /// <summary>Forgets what was in flight on a worker, and puts that work back in line; gives the micro-batch ranges taken back.</summary>
    private IReadOnlyList<string> TakeBackWork(IActorRef worker)
    {
        var taken = new List<string>();
        foreach (var step in Steps)
            for (var i = 0; i < step.InFlight.Length; i++)
                if (step.InFlight[i].RemoveAll(e => e.Worker.Equals(worker)) > 0)
                {
                    taken.Add(step == _current ? step.Range(i) : $"{step.Range(i)} of step {step.Step}");
                    step.Requeue(i);
                }
        return taken;
    }

    /// <summary>A worker that is gone or unreachable gets no more blocks; if it comes back, it gets the state anew.</summary>
    private void DropPeer(IActorRef worker)
    {
        foreach (var step in Steps)
        {
            step.Peers.Remove(worker);
            step.LatePeers.Remove(worker);
        }
    }

    private void OnWorkerGone(IActorRef worker)
    {
        if (!_workers.Remove(worker, out var state)) return;
        _workerOrder.Remove(worker);
        DropPeer(worker);
        var taken = TakeBackWork(worker);
        _log.Warning("Worker {Worker} is gone ({Workers} live); its micro-batches [{MicroBatches}] go to the others",
            state.Id, LiveWorkers, string.Join(",", taken));
        if (LiveWorkers == 0) _waitingSince.Restart();
        if (SegmentMode) LeaveLineage(worker, $"worker {state.Id} is gone");
        Dispatch();
    }

    private void OnNodeUnreachable(Address address)
    {
        var taken = new List<string>();
        foreach (var (worker, state) in _workers.Where(w => w.Value.Address.Equals(address) && !w.Value.Suspended).ToList())
        {
            state.Suspended = true;
            state.ReplicaVersion = -1;
            DropPeer(worker);
            taken.AddRange(TakeBackWork(worker));
            if (SegmentMode) LeaveLineage(worker, $"node {address} is unreachable");
        }
        if (taken.Count == 0 && !_workers.Values.Any(w => w.Address.Equals(address))) return;
        _log.Warning("Node {Address} is unreachable ({Workers} workers live); its micro-batches [{MicroBatches}] go to the others",
            address, LiveWorkers, string.Join(",", taken));
        if (LiveWorkers == 0) _waitingSince.Restart();
        Dispatch();
    }

    private void OnNodeReachable(Address address)
    {
        foreach (var state in _workers.Values.Where(w => w.Address.Equals(address) && w.Suspended))
        {
            state.Suspended = false;
            state.Outstanding.Clear();
            state.KnownVersion = -1;
            state.ReplicaVersion = -1;
            _log.Info("Worker {Worker} is reachable again ({Workers} live)", state.Id, LiveWorkers);
        }
        Dispatch();
    }

    private void OnTick()
    {
        if (_requester is null) return;
        if (LiveWorkers == 0 || (!Started && LiveWorkers < _plan.MinWorkers))
        {
            WaitForWorkers();
            return;
        }
        if (!Started) return;
        if (SegmentMode)
        {
            OnSegmentTick();
            return;
        }
        var now = Now;
        foreach (var step in Steps)
            for (var i = 0; i < step.InFlight.Length; i++)
            {
                if (step.Results[i] is not null) continue;
                foreach (var (worker, since) in step.InFlight[i].ToList())
                    if (now - since > _plan.AssignmentTimeout)
                    {
                        step.InFlight[i].RemoveAll(e => e.Worker.Equals(worker));
                        _log.Warning("{Unit} of step {Step} took over {Timeout} on {Worker}; it goes to another worker",
                            step.Describe(i), step.Step, _plan.AssignmentTimeout, _workers.GetValueOrDefault(worker)?.Id ?? worker.Path.ToString());
                        step.Requeue(i);
                    }
            }
        Dispatch();
        ReissueStragglers(now);
    }

    /// <summary>
    /// With nothing of the current step left to hand out, a unit running far longer than its finished
    /// peers also goes to a worker with nothing of this step in hand; the first reply wins.
    /// </summary>
    private void ReissueStragglers(TimeSpan now)
    {
        if (_current is not { } step || step.Pending.Count > 0 || step.Durations.Count == 0) return;
        var sorted = step.Durations.Order().ToList();
        var limit = Math.Max(_plan.StragglerFactor * sorted[sorted.Count / 2], 0.25);
        for (var i = 0; i < step.InFlight.Length; i++)
        {
            if (step.Results[i] is not null || step.InFlight[i].Count != 1) continue;
            var (slow, since) = step.InFlight[i][0];
            if ((now - since).TotalSeconds < limit) continue;
            var idle = _workerOrder.FirstOrDefault(w => _workers[w].IdleIn(step.Step) && !w.Equals(slow));
            if (idle is null) return;
            _log.Info("{Unit} of step {Step} has run {Seconds:F2} s on {Worker}; also given to {Other}",
                step.Describe(i), step.Step, (now - since).TotalSeconds, _workers.GetValueOrDefault(slow)?.Id ?? "?", _workers[idle].Id);
            Assign(idle, step, i);
        }
    }

    private void WaitForWorkers()
    {
        var waited = _waitingSince.Elapsed;
        if (waited - _lastWaitingLog >= WaitingLogInterval || _lastWaitingLog > waited)
        {
            _lastWaitingLog = waited;
            _log.Warning("Waiting for workers: {Live} live, {Needed} needed, for {Seconds:F0} s (giving up after {Timeout} s)",
                LiveWorkers, Started ? 1 : _plan.MinWorkers, waited.TotalSeconds, _plan.WorkerTimeout.TotalSeconds);
        }
        if (_plan.WorkerTimeout <= TimeSpan.Zero || waited < _plan.WorkerTimeout) return;
        var saved = SaveCheckpoint();
        var resume = saved is null ? "" : $"; the run was saved in {saved}; continue it with: train --resume {_plan.RunDirectory}";
        Fail($"no worker for {_plan.WorkerTimeout.TotalSeconds:F0} s ({LiveWorkers} live, {(Started ? 1 : _plan.MinWorkers)} needed){resume}", checkpoint: false);
    }

    private void CompleteStep()
    {
        var run = _run!;
        var step = _current!;
        var outcome = run.Apply(step.Results.Select(r => r!).ToList());
        // The step's peers take it from its blocks themselves.
        foreach (var peer in step.AllPeers)
            if (_workers.TryGetValue(peer, out var state) && state.ReplicaVersion == step.Step) state.ReplicaVersion = step.Step + 1;
        if (!Account(step, outcome, _thisStep.Elapsed.TotalSeconds)) return;
        if (outcome.EpochEnded) CompleteEpoch(outcome);
        var every = _plan.CheckpointEvery;
        if ((every > 0 && run.Step % every == 0) || (every <= 0 && outcome.EpochEnded)) SaveCheckpoint();
        if (_requester is null) return;
        if (run.Finished || _stopEarly) Finish();
        else BeginStep();
    }

    /// <summary>
    /// Counts a step taken, which took <paramref name="seconds"/>: its units to the workers that computed
    /// them, its names, loss and right answers to the epoch, and it goes to the recorder. False, after
    /// stopping the run, when the loss is not finite.
    /// </summary>
    private bool Account(StepWork step, StepOutcome outcome, double seconds)
    {
        for (var unit = 0; unit < step.Units.Count; unit++)
            if (step.ComputedBy[unit] is { } id) _completedByWorker[id] = _completedByWorker.GetValueOrDefault(id) + step.Units[unit].MicroBatches;
        _trainedNames += outcome.Names;
        _epochLossSum += outcome.Loss * outcome.Names;
        _epochNames += outcome.Names;
        _epochCorrect += outcome.Correct;
        var stepsPerEpoch = _run!.StepsPerEpoch;
        Record(new Runs.StepRecorded(outcome.Step, outcome.Epoch, (int)(outcome.Step % stepsPerEpoch), stepsPerEpoch,
            _plan.Options.Epochs, outcome.Loss, outcome.LearningRate, outcome.Names / Math.Max(seconds, 1e-9), LiveWorkers),
            now: outcome.EpochEnded || !double.IsFinite(outcome.Loss));
        if (double.IsFinite(outcome.Loss)) return true;
        Fail($"the training loss became {outcome.Loss} at step {outcome.Step}; try a lower --lr");
        return false;
    }

    private void Record(Runs.StepRecorded step, bool now)
    {
        if (_recorder is null) return;
        _unrecorded.Add(step);
        if (now || _unrecorded.Count >= RecordEvery || _sinceRecorded.Elapsed >= RecordInterval) SendRecordedSteps();
    }

    private void SendRecordedSteps()
    {
        if (_recorder is null || _unrecorded.Count == 0) return;
        _recorder.Tell(new Runs.StepsRecorded(_unrecorded.ToArray()));
        _unrecorded.Clear();
        _sinceRecorded.Restart();
    }

    private void CompleteEpoch(StepOutcome outcome)
    {
        // The evaluation's time counts for no epoch when the workers wait for it; with segments they go on
        // training meanwhile, so the clocks go on too (else the names of that time would count without it).
        if (!SegmentMode) _trainClock.Stop();
        var seconds = _epochClock.Elapsed.TotalSeconds;
        if (SegmentMode) _epochClock.Restart();
        var evaluated = _run!.ModelParameters;
        var (loss, report) = _evaluator!.Evaluate(evaluated, _plan.Validation);
        var summary = new EpochSummary(outcome.Epoch + 1, _epochLossSum / _epochNames, (double)_epochCorrect / _epochNames, loss, report.Accuracy, report.MacroF1,
            outcome.LearningRate, _epochNames / seconds, seconds, LiveWorkers);
        if (_plan.StopAtTestAccuracy is { } goal)
        {
            summary = summary with { TestAccuracy = _evaluator.Evaluate(evaluated, _plan.Test).Report.Accuracy };
            if (summary.TestAccuracy >= goal) _stopEarly = true;
        }
        _epochs.Add(summary);
        _recorder?.Tell(new Runs.EpochRecorded(_run.Step, summary));
        if (_bestValidation is null || report.Accuracy > _bestValidation.Accuracy)
        {
            _bestValidation = report;
            _bestParameters = evaluated;
            _bestEpoch = summary.Epoch;
        }
        _log.Info("Epoch {Epoch}/{Epochs}: train loss {TrainLoss:F4}, accuracy {TrainAccuracy:F4}; validation loss {ValidationLoss:F4}, accuracy {Accuracy:F4}, macro-F1 {MacroF1:F4}; {NamesPerSecond:F0} names/s, {Workers} workers",
            new object[] { summary.Epoch, _plan.Options.Epochs, summary.TrainLoss, summary.TrainAccuracy, summary.ValidationLoss, summary.ValidationAccuracy,
                summary.ValidationMacroF1, summary.NamesPerSecond, summary.Workers });
        _epochLossSum = 0;
        _epochNames = 0;
        _epochCorrect = 0;
        if (SegmentMode) return;
        _trainClock.Start();
        _epochClock.Restart();
    }

    private double TrainSeconds => _previousTrainSeconds + _trainClock.Elapsed.TotalSeconds;

    private string? SaveCheckpoint()
    {
        if (_plan.RunDirectory is null || _run is null) return null;
        var book = new Bookkeeping(_bestEpoch, _bestValidation, _epochs.ToList(), new Dictionary<string, int>(_completedByWorker), _trainedNames, TrainSeconds);
        var path = CheckpointStore.Write(_plan.RunDirectory, new Checkpoint(_run.Capture(), _bestParameters, JsonSerializer.Serialize(book)));
        _log.Debug("Checkpoint {Path}", path);
        return path;
    }

    private void Restore(Checkpoint checkpoint)
    {
        var book = JsonSerializer.Deserialize<Bookkeeping>(checkpoint.Bookkeeping)
                   ?? throw new InvalidOperationException("a checkpoint without bookkeeping");
        _bestEpoch = book.BestEpoch;
        _bestValidation = book.BestValidation;
        _bestParameters = checkpoint.BestParameters;
        _epochs.AddRange(book.Epochs);
        foreach (var (worker, count) in book.MicroBatchesPerWorker) _completedByWorker[worker] = count;
        _trainedNames = book.TrainedNames;
        _previousTrainSeconds = book.TrainSeconds;
    }

    private void Finish()
    {
        SendRecordedSteps();
        _trainClock.Stop();
        var best = _bestParameters ?? _run!.ModelParameters;
        var (_, test) = _evaluator!.Evaluate(best, _plan.Test);
        var validation = _bestValidation ?? _evaluator.Evaluate(best, _plan.Validation).Report;
        var seconds = TrainSeconds;
        _requester!.Tell(new TrainingCompleted(_plan.RunId, _run!.ModelParameters, best, _bestEpoch, _epochs, validation, test,
            seconds, _trainedNames / Math.Max(seconds, 1e-9), new Dictionary<string, int>(_completedByWorker)));
        _requester = null;
    }

    private void Fail(string reason, bool checkpoint = true)
    {
        SendRecordedSteps();
        if (checkpoint) SaveCheckpoint();
        _log.Error("Run {RunId} failed: {Reason}", _plan.RunId, reason);
        _requester?.Tell(new TrainingFailed(_plan.RunId, reason));
        _requester = null;
        _current = null;
        _ahead.Clear();
        _segments.Clear();
    }
}
