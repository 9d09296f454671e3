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

    public GradientWorker(IActorRef? coordinator, string workerId, string secret, WorkerFaults faults, Hosting.RunIdEnricher? runIdLog)
    {
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
        Receive<ComputeGradients>(OnCompute);
    }

    public ITimerScheduler Timers { get; set; } = null!;

    /// <summary>A worker that registers with <paramref name="coordinator"/> at once, or, when null, once told where it is.</summary>
    /// <param name="runIdLog">Set to the run the worker joins, so that the node's log events carry it.</param>
    public static Props Props(IActorRef? coordinator, string workerId, string secret = "", WorkerFaults? faults = null, Hosting.RunIdEnricher? runIdLog = null) =>
        Akka.Actor.Props.Create(() => new GradientWorker(coordinator, workerId, secret, faults ?? WorkerFaults.None, runIdLog)).WithDispatcher(TorchDispatcher.Id);

    protected override void PreStart()
    {
        if (_coordinator is not null) Register();
    }

    /// <summary>Registers, and again every few seconds until the coordinator answers.</summary>
    private void Register()
    {
        _coordinator?.Tell(new RegisterWorker(Protocol.Version, _workerId, ModelConfig.Format, _secret));
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
        _runId = accepted.RunId;
        if (_runIdLog is not null) _runIdLog.RunId = accepted.RunId;
        _log.Info("Worker {Worker} joined run {RunId}: {Cell} hidden {Hidden}", _workerId, accepted.RunId, config.Cell, config.Hidden);
    }

    private void OnCompute(ComputeGradients work)
    {
        if (_engine is null || work.RunId != _runId)
        {
            Sender.Tell(new GradientsFailed(work.RunId, work.Step, work.MicroBatch, $"worker {_workerId} has not joined run {work.RunId}"));
            return;
        }
        if (work.Parameters is not null)
            _engine.LoadParameters(work.ParametersVersion, work.Parameters);
        else if (_engine.LoadedVersion != work.ParametersVersion)
        {
            Sender.Tell(new ParametersMissing(work.RunId, work.Step, work.MicroBatch, work.ParametersVersion));
            return;
        }
        try
        {
            var last = work.MicroBatch + work.MicroBatches.Length - 1;
            if (_faults.FailAt is var (failStep, failMicroBatch) && failStep == work.Step && failMicroBatch >= work.MicroBatch && failMicroBatch <= last && !_failedOnce)
            {
                _failedOnce = true;
                throw new InvalidOperationException($"injected failure at step {work.Step} micro-batch {failMicroBatch}");
            }
            if (work.MicroBatches.Length == 0) throw new ArgumentException("a unit of work without micro-batches");
            var parts = new List<MicroBatchGradients>(work.MicroBatches.Length);
            foreach (var part in work.MicroBatches)
                parts.Add(_engine.Compute(part.Names, part.Labels, part.NoiseSeed));
            var result = GradientTree.Reduce(parts);
            if (!double.IsFinite(result.LossSum) || !VectorMath.AllFinite(result.Gradients))
            {
                Answer(Sender, new GradientsFailed(work.RunId, work.Step, work.MicroBatch, "non-finite loss or gradient"), parts.Count);
                return;
            }
            Answer(Sender, new GradientsComputed(work.RunId, work.Step, work.MicroBatch, work.MicroBatches.Length, result.LossSum, result.Count, result.Gradients, result.Correct), parts.Count);
        }
        catch (Exception e)
        {
            _log.Warning(e, "Worker {Worker} failed on step {Step} micro-batch {MicroBatch}", _workerId, work.Step, work.MicroBatch);
            Sender.Tell(new GradientsFailed(work.RunId, work.Step, work.MicroBatch, e.Message));
        }
    }

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
