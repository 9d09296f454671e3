using System.Diagnostics;
using Akka.Actor;
using Akka.Event;
using NameRnn.Contracts;
using NameRnn.Model.Network;
using NameRnn.Model.Training;
using NameRnn.Worker;

namespace NameRnn.Coordinator.Training;

/// <summary>
/// Runs the synchronous data-parallel protocol over whatever workers have registered: it hands the
/// current step's micro-batches to idle workers (with the parameters where the worker lacks that
/// version), takes the first reply for each (step, micro-batch) and drops the rest, gives the work
/// of a dead worker to the others, and when every micro-batch of the step is in lets
/// <see cref="TrainingRun"/> add them in order and step the optimizer. After each epoch it
/// evaluates on the validation split and keeps the best parameters; at the end it evaluates those
/// on the test split, once.
/// </summary>
public sealed class TrainingCoordinator : ReceiveActor
{
    private sealed class WorkerState(string id)
    {
        public string Id { get; } = id;
        public HashSet<int> Outstanding { get; } = [];
        public long KnownVersion { get; set; } = -1;
        public int Completed { get; set; }
    }

    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly TrainingPlan _plan;
    private readonly Dictionary<IActorRef, WorkerState> _workers = [];
    private readonly List<IActorRef> _workerOrder = [];
    private readonly Dictionary<string, int> _completedByWorker = [];
    private readonly List<EpochSummary> _epochs = [];
    private readonly Stopwatch _trainClock = new();
    private readonly Stopwatch _epochClock = new();
    private readonly ModelSpec _spec;
    private readonly float[]? _classWeights;
    private TrainingRun? _run;
    private Evaluator? _evaluator;
    private IActorRef? _requester;

    private IReadOnlyList<MicroBatch> _microBatches = [];
    private MicroBatchGradients?[] _results = [];
    private int[] _attempts = [];
    private readonly List<int> _pending = [];
    private int _received;

    private double _epochLossSum;
    private int _epochNames;
    private float[]? _bestParameters;
    private ClassificationReport? _bestValidation;
    private int _bestEpoch = -1;
    private long _trainedNames;

    public TrainingCoordinator(TrainingPlan plan)
    {
        _plan = plan;
        _spec = new ModelSpec(plan.Model.Cell, plan.Model.Hidden, plan.Model.Classes, plan.Model.Inputs, plan.Model.Hash());
        _classWeights = plan.ClassWeights();
        Receive<StartTraining>(_ => OnStart());
        Receive<RegisterWorker>(OnRegister);
        Receive<GradientsComputed>(OnComputed);
        Receive<GradientsFailed>(OnFailed);
        Receive<ParametersMissing>(OnParametersMissing);
        Receive<Terminated>(t => OnWorkerGone(t.ActorRef));
    }

    public static Props Props(TrainingPlan plan) =>
        Akka.Actor.Props.Create(() => new TrainingCoordinator(plan)).WithDispatcher(TorchDispatcher.Id);

    protected override void PostStop() => _evaluator?.Dispose();

    private bool Started => _run is not null;

    private void OnStart()
    {
        _requester = Sender;
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
            _workers[Sender] = new WorkerState(register.WorkerId);
            _workerOrder.Add(Sender);
            if (_completedByWorker.TryAdd(register.WorkerId, 0) && Started)
                _log.Info("Worker {Worker} joined mid-run at step {Step}", register.WorkerId, _run!.Step);
            Context.Watch(Sender);
            _log.Info("Worker {Worker} registered ({Workers} live)", register.WorkerId, _workers.Count);
        }
        Sender.Tell(new WorkerAccepted(_plan.RunId, _spec, _classWeights));
        if (Started) Dispatch();
        else TryBegin();
    }

    private bool SecretMatches(string secret) =>
        System.Security.Cryptography.CryptographicOperations.FixedTimeEquals(
            System.Text.Encoding.UTF8.GetBytes(secret), System.Text.Encoding.UTF8.GetBytes(_plan.ClusterSecret));

    private void TryBegin()
    {
        if (Started || _requester is null || _workers.Count < _plan.MinWorkers) return;
        _evaluator = new Evaluator(_plan.Model, _plan.Labels);
        _run = new TrainingRun(_plan.Options, _plan.Model, _plan.Train, _plan.InitialParameters());
        _log.Info("Run {RunId}: {Names} training names, {Steps} steps per epoch, {Epochs} epochs, {Workers} workers",
            _plan.RunId, _plan.Train.Count, _run.StepsPerEpoch, _plan.Options.Epochs, _workers.Count);
        _trainClock.Start();
        _epochClock.Restart();
        BeginStep();
    }

    private void BeginStep()
    {
        _microBatches = _run!.MicroBatches();
        _results = new MicroBatchGradients?[_microBatches.Count];
        _attempts = new int[_microBatches.Count];
        _pending.Clear();
        _pending.AddRange(Enumerable.Range(0, _microBatches.Count));
        _received = 0;
        Dispatch();
    }

    /// <summary>Gives pending micro-batches, lowest index first, to idle workers in registration order.</summary>
    private void Dispatch()
    {
        if (!Started || _pending.Count == 0) return;
        foreach (var worker in _workerOrder)
        {
            if (_pending.Count == 0) break;
            var state = _workers[worker];
            if (state.Outstanding.Count > 0) continue;
            var index = _pending[0];
            _pending.RemoveAt(0);
            Assign(worker, state, index);
        }
    }

    private void Assign(IActorRef worker, WorkerState state, int index)
    {
        var run = _run!;
        var batch = _microBatches[index];
        var parameters = state.KnownVersion == run.ParametersVersion ? null : run.Parameters;
        state.KnownVersion = run.ParametersVersion;
        state.Outstanding.Add(index);
        _attempts[index]++;
        worker.Tell(new ComputeGradients(_plan.RunId, run.Step, index, run.ParametersVersion, parameters, batch.Names, batch.Labels));
    }

    /// <summary>The first reply for the current (step, micro-batch) counts; a late, duplicate or foreign one is dropped.</summary>
    private bool IsCurrent(string runId, long step, int microBatch) =>
        Started && runId == _plan.RunId && step == _run!.Step && microBatch >= 0 && microBatch < _results.Length;

    private void Release(int microBatch)
    {
        if (_workers.TryGetValue(Sender, out var state)) state.Outstanding.Remove(microBatch);
    }

    private void OnComputed(GradientsComputed reply)
    {
        var current = IsCurrent(reply.RunId, reply.Step, reply.MicroBatch);
        if (current) Release(reply.MicroBatch);
        if (!current || _results[reply.MicroBatch] is not null)
        {
            _log.Debug("Dropped a late or duplicate reply for step {Step} micro-batch {MicroBatch}", reply.Step, reply.MicroBatch);
            Dispatch();
            return;
        }
        var expected = _microBatches[reply.MicroBatch].Names.Length;
        if (reply.Count != expected || reply.Gradients.Length != _plan.Model.ParameterCount)
        {
            _log.Warning("Dropped a malformed reply for step {Step} micro-batch {MicroBatch}: {Count} names, {Values} values",
                reply.Step, reply.MicroBatch, reply.Count, reply.Gradients.Length);
            Requeue(reply.MicroBatch);
            Dispatch();
            return;
        }
        _results[reply.MicroBatch] = new MicroBatchGradients(reply.LossSum, reply.Count, reply.Gradients);
        _pending.Remove(reply.MicroBatch);
        _received++;
        if (_workers.TryGetValue(Sender, out var state))
        {
            state.Completed++;
            _completedByWorker[state.Id] = _completedByWorker.GetValueOrDefault(state.Id) + 1;
        }
        if (_received == _results.Length) CompleteStep();
        else Dispatch();
    }

    private void OnFailed(GradientsFailed failed)
    {
        if (!IsCurrent(failed.RunId, failed.Step, failed.MicroBatch) || _results[failed.MicroBatch] is not null) return;
        Release(failed.MicroBatch);
        _log.Warning("Micro-batch {MicroBatch} of step {Step} failed on {Worker}: {Reason}",
            failed.MicroBatch, failed.Step, _workers.GetValueOrDefault(Sender)?.Id ?? Sender.Path.ToString(), failed.Reason);
        if (_attempts[failed.MicroBatch] >= _plan.MaxAttemptsPerMicroBatch)
        {
            var names = string.Join(", ", _microBatches[failed.MicroBatch].Names);
            Fail($"micro-batch {failed.MicroBatch} of step {failed.Step} failed {_attempts[failed.MicroBatch]} times (last: {failed.Reason}); its names: {names}");
            return;
        }
        Requeue(failed.MicroBatch);
        Dispatch();
    }

    private void OnParametersMissing(ParametersMissing missing)
    {
        if (_workers.TryGetValue(Sender, out var state)) state.KnownVersion = -1;
        if (!IsCurrent(missing.RunId, missing.Step, missing.MicroBatch) || _results[missing.MicroBatch] is not null) return;
        Release(missing.MicroBatch);
        _attempts[missing.MicroBatch]--;
        Requeue(missing.MicroBatch);
        Dispatch();
    }

    private void Requeue(int microBatch)
    {
        if (_results[microBatch] is not null || _pending.Contains(microBatch)) return;
        if (_workers.Values.Any(w => w.Outstanding.Contains(microBatch))) return;
        var at = _pending.FindIndex(i => i > microBatch);
        _pending.Insert(at < 0 ? _pending.Count : at, microBatch);
    }

    private void OnWorkerGone(IActorRef worker)
    {
        if (!_workers.Remove(worker, out var state)) return;
        _workerOrder.Remove(worker);
        _log.Warning("Worker {Worker} is gone ({Workers} live); its micro-batches {MicroBatches} go to the others",
            state.Id, _workers.Count, string.Join(",", state.Outstanding));
        foreach (var index in state.Outstanding) Requeue(index);
        Dispatch();
    }

    private void CompleteStep()
    {
        var run = _run!;
        var outcome = run.Apply(_results.Select(r => r!).ToList());
        _trainedNames += outcome.Names;
        _epochLossSum += outcome.Loss * outcome.Names;
        _epochNames += outcome.Names;
        if (!double.IsFinite(outcome.Loss))
        {
            Fail($"the training loss became {outcome.Loss} at step {outcome.Step}; try a lower --lr");
            return;
        }
        if (outcome.EpochEnded) CompleteEpoch(outcome);
        if (_requester is null) return;
        if (run.Finished) Finish();
        else BeginStep();
    }

    private void CompleteEpoch(StepOutcome outcome)
    {
        _trainClock.Stop();
        var seconds = _epochClock.Elapsed.TotalSeconds;
        var evaluated = _run!.ModelParameters;
        var (loss, report) = _evaluator!.Evaluate(evaluated, _plan.Validation);
        var summary = new EpochSummary(outcome.Epoch + 1, _epochLossSum / _epochNames, loss, report.Accuracy, report.MacroF1,
            outcome.LearningRate, _epochNames / seconds, seconds, _workers.Count);
        _epochs.Add(summary);
        if (_bestValidation is null || report.Accuracy > _bestValidation.Accuracy)
        {
            _bestValidation = report;
            _bestParameters = evaluated;
            _bestEpoch = summary.Epoch;
        }
        _log.Info("Epoch {Epoch}/{Epochs}: train loss {TrainLoss:F4}, validation loss {ValidationLoss:F4}, accuracy {Accuracy:F4}, macro-F1 {MacroF1:F4}, {NamesPerSecond:F0} names/s, {Workers} workers",
            new object[] { summary.Epoch, _plan.Options.Epochs, summary.TrainLoss, summary.ValidationLoss, summary.ValidationAccuracy,
                summary.ValidationMacroF1, summary.NamesPerSecond, summary.Workers });
        _epochLossSum = 0;
        _epochNames = 0;
        _trainClock.Start();
        _epochClock.Restart();
    }

    private void Finish()
    {
        _trainClock.Stop();
        var (_, test) = _evaluator!.Evaluate(_bestParameters!, _plan.Test);
        var seconds = _trainClock.Elapsed.TotalSeconds;
        _requester!.Tell(new TrainingCompleted(_plan.RunId, _run!.ModelParameters, _bestParameters!, _bestEpoch, _epochs, _bestValidation!, test,
            seconds, _trainedNames / seconds, new Dictionary<string, int>(_completedByWorker)));
        _requester = null;
    }

    private void Fail(string reason)
    {
        _log.Error("Run {RunId} failed: {Reason}", _plan.RunId, reason);
        _requester?.Tell(new TrainingFailed(_plan.RunId, reason));
        _requester = null;
        _pending.Clear();
    }
}
