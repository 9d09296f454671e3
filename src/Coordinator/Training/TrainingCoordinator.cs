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
/// A worker adds its unit's micro-batches itself, so each sends one gradient per step. Work of a
/// worker that dies, becomes unreachable or takes too long goes to the others; a failing unit is
/// retried on another worker. After each epoch it evaluates on the
/// validation split and keeps the best parameters; checkpoints let a run continue exactly; at the
/// end it evaluates the best parameters on the test split, once.
/// </summary>
public sealed class TrainingCoordinator : ReceiveActor, IWithTimers
{
    private static readonly TimeSpan TickInterval = TimeSpan.FromMilliseconds(200);
    private static readonly TimeSpan WaitingLogInterval = TimeSpan.FromSeconds(5);

    private sealed class WorkerState(string id, Address address)
    {
        public string Id { get; } = id;
        public Address Address { get; } = address;
        public HashSet<(long Step, int MicroBatch)> Outstanding { get; } = [];
        public long KnownVersion { get; set; } = -1;
        public bool Suspended { get; set; }
        public bool Idle => Outstanding.Count == 0 && !Suspended;
        public bool CanTake(int depth) => Outstanding.Count < depth && !Suspended;
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

    private IReadOnlyList<MicroBatch> _microBatches = [];
    private IReadOnlyList<(int First, int MicroBatches)> _units = [];
    private GradientBlock?[] _results = [];
    private int[] _failures = [];
    private HashSet<IActorRef>[] _failedOn = [];
    private List<(IActorRef Worker, TimeSpan Since)>[] _inFlight = [];
    private readonly List<int> _pending = [];
    private readonly List<double> _durations = [];
    private int _received;

    private double _epochLossSum;
    private int _epochNames;
    private int _epochCorrect;
    private readonly Stopwatch _thisStep = new();
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
        Receive<Terminated>(t => OnWorkerGone(t.ActorRef));
        Receive<NodeUnreachable>(e => OnNodeUnreachable(e.Address));
        Receive<NodeReachable>(e => OnNodeReachable(e.Address));
        Receive<Tick>(_ => OnTick());
    }

    public ITimerScheduler Timers { get; set; } = null!;

    /// <param name="recorder">Gets a <see cref="Runs.StepRecorded"/> per step and an <see cref="Runs.EpochRecorded"/> per epoch, if given.</param>
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
        if (_run.Finished) Finish();
        else BeginStep();
    }

    private void BeginStep()
    {
        _microBatches = _run!.MicroBatches();
        _units = GradientTree.Units(_microBatches.Count, LiveWorkers, _plan.LargestUnit);
        var n = _units.Count;
        _results = new GradientBlock?[n];
        _failures = new int[n];
        _failedOn = Enumerable.Range(0, n).Select(_ => new HashSet<IActorRef>()).ToArray();
        _inFlight = Enumerable.Range(0, n).Select(_ => new List<(IActorRef, TimeSpan)>()).ToArray();
        _pending.Clear();
        _pending.AddRange(Enumerable.Range(0, n));
        _durations.Clear();
        _received = 0;
        _thisStep.Restart();
        Dispatch();
    }

    /// <summary>
    /// Gives pending units, lowest index first, to the workers with the least work in hand, up to
    /// <see cref="TrainingPlan.PipelineDepth"/> each, so that a worker finds its next unit waiting when
    /// it sends a reply; a retried one goes to a worker it has not failed on when there is one. Ties go
    /// by worker id, not by the order in which workers happened to register.
    /// </summary>
    private void Dispatch()
    {
        if (!Started || _requester is null) return;
        foreach (var index in _pending.ToList())
        {
            var open = _workerOrder.Where(w => _workers[w].CanTake(_plan.PipelineDepth))
                .OrderBy(w => _workers[w].Outstanding.Count).ThenBy(w => _workers[w].Id, StringComparer.Ordinal).ToList();
            if (open.Count == 0) break;
            var worker = open.FirstOrDefault(w => !_failedOn[index].Contains(w)) ?? open[0];
            _pending.Remove(index);
            Assign(worker, index);
        }
    }

    private void Assign(IActorRef worker, int unit)
    {
        var run = _run!;
        var state = _workers[worker];
        var parameters = state.KnownVersion == run.ParametersVersion ? null : run.Parameters;
        state.KnownVersion = run.ParametersVersion;
        state.Outstanding.Add((run.Step, _units[unit].First));
        _inFlight[unit].Add((worker, Now));
        var work = BatchesOf(unit).Select(b => new MicroBatchWork(b.Names, b.Labels, b.NoiseSeed)).ToArray();
        worker.Tell(new ComputeGradients(_plan.RunId, run.Step, _units[unit].First, run.ParametersVersion, parameters, work));
    }

    /// <summary>The unit of the current step that starts at <paramref name="microBatch"/>, or −1.</summary>
    private int UnitAt(int microBatch)
    {
        for (var i = 0; i < _units.Count; i++)
            if (_units[i].First == microBatch) return i;
        return -1;
    }

    /// <summary>The micro-batches of a unit of the current step.</summary>
    private IEnumerable<MicroBatch> BatchesOf(int unit) => _microBatches.Skip(_units[unit].First).Take(_units[unit].MicroBatches);

    /// <summary>"micro-batch 3" or "micro-batches 4-7": a unit for the log.</summary>
    private string Describe(int unit) => (_units[unit].MicroBatches == 1 ? "micro-batch " : "micro-batches ") + Range(unit);

    private string Range(int unit) => _units[unit] is var (first, count) && count == 1 ? $"{first}" : $"{first}-{first + count - 1}";

    /// <summary>A reply frees its worker whatever it says, for whichever step.</summary>
    private TimeSpan? Release(long step, int microBatch)
    {
        if (_workers.TryGetValue(Sender, out var state)) state.Outstanding.Remove((step, microBatch));
        if (!IsCurrentStep(step) || UnitAt(microBatch) is var unit && unit < 0) return null;
        var entry = _inFlight[unit].FindIndex(e => e.Worker.Equals(Sender));
        if (entry < 0) return null;
        var since = _inFlight[unit][entry].Since;
        _inFlight[unit].RemoveAt(entry);
        return Now - since;
    }

    private bool IsCurrentStep(long step) => Started && step == _run!.Step;

    /// <summary>The unit a reply is for, when it is the first reply for a unit of the current step; else −1 (a late, duplicate or foreign one is dropped).</summary>
    private int OpenUnit(string runId, long step, int microBatch) =>
        runId == _plan.RunId && IsCurrentStep(step) && UnitAt(microBatch) is var unit && unit >= 0 && _results[unit] is null ? unit : -1;

    private void OnComputed(GradientsComputed reply)
    {
        var took = Release(reply.Step, reply.MicroBatch);
        var unit = OpenUnit(reply.RunId, reply.Step, reply.MicroBatch);
        if (unit < 0)
        {
            _log.Debug("Dropped a late or duplicate reply for step {Step} micro-batch {MicroBatch}", reply.Step, reply.MicroBatch);
            Dispatch();
            return;
        }
        var (first, count) = _units[unit];
        if (reply.MicroBatches != count || reply.Count != BatchesOf(unit).Sum(b => b.Names.Length) || reply.Gradients.Length != _plan.Model.ParameterCount)
        {
            _log.Warning("Dropped a malformed reply for step {Step} {Unit}: {MicroBatches} micro-batches, {Count} names, {Values} values",
                reply.Step, Describe(unit), reply.MicroBatches, reply.Count, reply.Gradients.Length);
            Requeue(unit);
            Dispatch();
            return;
        }
        _results[unit] = new GradientBlock(first, count, new MicroBatchGradients(reply.LossSum, reply.Count, reply.Gradients, reply.Correct));
        _pending.Remove(unit);
        if (took is { } t) _durations.Add(t.TotalSeconds);
        _received++;
        if (_workers.TryGetValue(Sender, out var state))
            _completedByWorker[state.Id] = _completedByWorker.GetValueOrDefault(state.Id) + count;
        if (_received == _results.Length) CompleteStep();
        else Dispatch();
    }

    private void OnFailed(GradientsFailed failed)
    {
        Release(failed.Step, failed.MicroBatch);
        var index = OpenUnit(failed.RunId, failed.Step, failed.MicroBatch);
        if (index < 0)
        {
            Dispatch();
            return;
        }
        _failures[index]++;
        _failedOn[index].Add(Sender);
        _log.Warning("{Unit} of step {Step} failed on {Worker} (failure {Failures} of at most {Attempts}): {Reason}",
            Describe(index), failed.Step, _workers.GetValueOrDefault(Sender)?.Id ?? Sender.Path.ToString(), _failures[index], _plan.MaxAttemptsPerMicroBatch, failed.Reason);
        if (_failures[index] >= _plan.MaxAttemptsPerMicroBatch)
        {
            var names = string.Join(", ", BatchesOf(index).SelectMany(b => b.Names));
            Fail($"{Describe(index)} of step {failed.Step} failed {_failures[index]} times (last: {failed.Reason}); its names: {names}");
            return;
        }
        Requeue(index);
        Dispatch();
    }

    private void OnParametersMissing(ParametersMissing missing)
    {
        if (_workers.TryGetValue(Sender, out var state)) state.KnownVersion = -1;
        Release(missing.Step, missing.MicroBatch);
        if (OpenUnit(missing.RunId, missing.Step, missing.MicroBatch) is var unit && unit >= 0) Requeue(unit);
        Dispatch();
    }

    /// <summary>Puts a unit back in line unless it is done, waiting, or still being computed elsewhere.</summary>
    private void Requeue(int unit)
    {
        if (_results[unit] is not null || _pending.Contains(unit) || _inFlight[unit].Count > 0) return;
        var at = _pending.FindIndex(i => i > unit);
        _pending.Insert(at < 0 ? _pending.Count : at, unit);
    }

    /// <summary>Forgets what was in flight on a worker, and puts that work back in line; gives the micro-batch ranges taken back.</summary>
    private IReadOnlyList<string> TakeBackWork(IActorRef worker)
    {
        var taken = new List<string>();
        for (var i = 0; i < _inFlight.Length; i++)
            if (_inFlight[i].RemoveAll(e => e.Worker.Equals(worker)) > 0)
            {
                taken.Add(Range(i));
                Requeue(i);
            }
        return taken;
    }

    private void OnWorkerGone(IActorRef worker)
    {
        if (!_workers.Remove(worker, out var state)) return;
        _workerOrder.Remove(worker);
        var taken = TakeBackWork(worker);
        _log.Warning("Worker {Worker} is gone ({Workers} live); its micro-batches [{MicroBatches}] go to the others",
            state.Id, LiveWorkers, string.Join(",", taken));
        if (LiveWorkers == 0) _waitingSince.Restart();
        Dispatch();
    }

    private void OnNodeUnreachable(Address address)
    {
        var taken = new List<string>();
        foreach (var (worker, state) in _workers.Where(w => w.Value.Address.Equals(address) && !w.Value.Suspended).ToList())
        {
            state.Suspended = true;
            taken.AddRange(TakeBackWork(worker));
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
        var now = Now;
        for (var i = 0; i < _inFlight.Length; i++)
        {
            if (_results[i] is not null) continue;
            foreach (var (worker, since) in _inFlight[i].ToList())
                if (now - since > _plan.AssignmentTimeout)
                {
                    _inFlight[i].RemoveAll(e => e.Worker.Equals(worker));
                    _log.Warning("{Unit} of step {Step} took over {Timeout} on {Worker}; it goes to another worker",
                        Describe(i), _run!.Step, _plan.AssignmentTimeout, _workers.GetValueOrDefault(worker)?.Id ?? worker.Path.ToString());
                    Requeue(i);
                }
        }
        Dispatch();
        ReissueStragglers(now);
    }

    /// <summary>With nothing left to hand out, a unit running far longer than its finished peers also goes to an idle worker; the first reply wins.</summary>
    private void ReissueStragglers(TimeSpan now)
    {
        if (_pending.Count > 0 || _durations.Count == 0) return;
        var sorted = _durations.Order().ToList();
        var limit = Math.Max(_plan.StragglerFactor * sorted[sorted.Count / 2], 0.25);
        for (var i = 0; i < _inFlight.Length; i++)
        {
            if (_results[i] is not null || _inFlight[i].Count != 1) continue;
            var (slow, since) = _inFlight[i][0];
            if ((now - since).TotalSeconds < limit) continue;
            var idle = _workerOrder.FirstOrDefault(w => _workers[w].Idle && !w.Equals(slow));
            if (idle is null) return;
            _log.Info("{Unit} of step {Step} has run {Seconds:F2} s on {Worker}; also given to {Other}",
                Describe(i), _run!.Step, (now - since).TotalSeconds, _workers.GetValueOrDefault(slow)?.Id ?? "?", _workers[idle].Id);
            Assign(idle, i);
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
        var outcome = run.Apply(_results.Select(r => r!).ToList());
        _trainedNames += outcome.Names;
        _epochLossSum += outcome.Loss * outcome.Names;
        _epochNames += outcome.Names;
        _epochCorrect += outcome.Correct;
        _recorder?.Tell(new Runs.StepRecorded(outcome.Step, outcome.Epoch, (int)(outcome.Step % run.StepsPerEpoch), run.StepsPerEpoch,
            _plan.Options.Epochs, outcome.Loss, outcome.LearningRate, outcome.Names / Math.Max(_thisStep.Elapsed.TotalSeconds, 1e-9), LiveWorkers));
        if (!double.IsFinite(outcome.Loss))
        {
            Fail($"the training loss became {outcome.Loss} at step {outcome.Step}; try a lower --lr");
            return;
        }
        if (outcome.EpochEnded) CompleteEpoch(outcome);
        var every = _plan.CheckpointEvery;
        if ((every > 0 && run.Step % every == 0) || (every <= 0 && outcome.EpochEnded)) SaveCheckpoint();
        if (_requester is null) return;
        if (run.Finished || _stopEarly) Finish();
        else BeginStep();
    }

    private void CompleteEpoch(StepOutcome outcome)
    {
        _trainClock.Stop();
        var seconds = _epochClock.Elapsed.TotalSeconds;
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
        if (checkpoint) SaveCheckpoint();
        _log.Error("Run {RunId} failed: {Reason}", _plan.RunId, reason);
        _requester?.Tell(new TrainingFailed(_plan.RunId, reason));
        _requester = null;
        _pending.Clear();
    }
}
