using Akka.Actor;
using Akka.TestKit;
using Akka.TestKit.Xunit2;
using NameRnn.Contracts;
using NameRnn.Model.Data;
using NameRnn.Model.Network;
using NameRnn.Model.Training;
using NameRnn.Worker;

namespace NameRnn.Tests.Coordinator;

/// <summary>
/// Real gradient workers (TorchSharp) keeping replicas, with a probe as their coordinator that never sends
/// parameters after the first state: what they compute for the next step is checked against one engine
/// and the coordinator's own <see cref="TrainingRun"/>.
/// </summary>
public class ReplicaWorkerTests() : TestKit(TorchDispatcher.Hocon(localThreads: null))
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(20);
    private const string RunId = "run-r";

    private static readonly LabelledName[] Train =
        [new("Abe", 0), new("Bo", 1), new("Cyd", 2), new("Dee", 1), new("Eloise", 0), new("Fu", 2), new("Gustavsson", 1), new("Hal", 0)];

    private static readonly TrainingOptions Options = new()
    {
        Epochs = 1, BatchSize = 4, MicroBatch = 1, Cell = Cells.Gru, Hidden = 5, Optimizer = Optimizers.Adam, LearningRate = 0.05,
        WeightDecay = 0.01, Schedule = Schedules.Cosine, ClipNorm = 0.5, ClassWeightPower = 0, Dropout = 0.3, Seed = 3,
    };

    private static readonly ModelConfig Config = Options.Model(3);

    private (IActorRef Worker, TestProbe Coordinator) Start(string id, TestProbe? coordinator = null)
    {
        coordinator ??= CreateTestProbe();
        var worker = Sys.ActorOf(GradientWorker.Props(coordinator.Ref, id));
        coordinator.ExpectMsg<RegisterWorker>(Wait);
        worker.Tell(new WorkerAccepted(RunId, Config.ToSpec(), null, Options.Dropout, Options.LabelSmoothing), coordinator.Ref);
        return (worker, coordinator);
    }

    private static void SendState(IActorRef worker, TrainingRun run, IActorRef from)
    {
        foreach (var message in ReplicaStates.ToMessages(RunId, run.ParametersVersion, run.Parameters, run.OptimizerState, Options.Momentum, Options.WeightDecay, Options.ClipNorm))
            worker.Tell(message, from);
    }

    private static ComputeGradients Work(TrainingRun run, long step, int first, int count, IActorRef[] peers)
    {
        var batches = run.MicroBatchesOf(step).Skip(first).Take(count).Select(b => new MicroBatchWork(b.Names, b.Labels, b.NoiseSeed)).ToArray();
        return new ComputeGradients(RunId, step, first, step, null, batches, run.MicroBatchesOf(step).Count, run.LearningRateOf(step), peers);
    }

    /// <summary>The block sums of the current step as one engine computes them at the run's parameters: the independent reference.</summary>
    private static List<GradientBlock> Reference(TrainingRun run, GradientEngine engine)
    {
        engine.LoadParameters(run.ParametersVersion, run.Parameters);
        var parts = run.MicroBatches().Select(b => engine.Compute(b.Names, b.Labels, b.NoiseSeed)).ToList();
        return [new(0, 2, GradientTree.Reduce(parts[..2])), new(2, 2, GradientTree.Reduce(parts[2..]))];
    }

    private static int[] Bits(float[] values) => values.Select(BitConverter.SingleToInt32Bits).ToArray();

    [Fact]
    public void Two_workers_take_the_step_from_each_others_blocks_and_compute_the_next_step_as_the_coordinator_would()
    {
        var run = new TrainingRun(Options, Config, Train, ParameterInit.Create(Config, Options.Seed));
        var (a, coordinator) = Start("a");
        var (b, _) = Start("b", coordinator);
        IActorRef[] peers = [a, b];
        foreach (var worker in peers) SendState(worker, run, coordinator.Ref);
        foreach (var step in new long[] { 0, 1 })
        {
            a.Tell(Work(run, step, 0, 2, peers), coordinator.Ref);
            b.Tell(Work(run, step, 2, 2, peers), coordinator.Ref);
        }
        var replies = Enumerable.Range(0, 4).Select(_ => coordinator.ExpectMsg<GradientsComputed>(Wait)).ToDictionary(r => (r.Step, r.MicroBatch));

        using var engine = new GradientEngine(Config, null, Options.Dropout, Options.LabelSmoothing);
        foreach (var step in new long[] { 0, 1 })
        {
            var expected = Reference(run, engine);
            foreach (var block in expected)
            {
                var reply = replies[(step, block.First)];
                Assert.Equal(Bits(block.Sum.Gradients), Bits(reply.Gradients));
                Assert.Equal(BitConverter.DoubleToInt64Bits(block.Sum.LossSum), BitConverter.DoubleToInt64Bits(reply.LossSum));
            }
            run.Apply(expected);
        }
        coordinator.ExpectNoMsg(TimeSpan.FromMilliseconds(300));
    }

    [Fact]
    public void A_worker_whose_peer_never_sends_its_block_asks_for_the_parameters_and_goes_on_once_the_block_comes()
    {
        var run = new TrainingRun(Options, Config, Train, ParameterInit.Create(Config, Options.Seed));
        var (a, coordinator) = Start("a");
        var silent = CreateTestProbe();
        IActorRef[] peers = [a, silent.Ref];
        SendState(a, run, coordinator.Ref);
        a.Tell(Work(run, 0, 0, 2, peers), coordinator.Ref);
        var ahead = Work(run, 1, 0, 2, peers);
        a.Tell(ahead, coordinator.Ref);

        var mine = coordinator.ExpectMsg<GradientsComputed>(Wait);
        var sent = silent.ExpectMsg<GradientsComputed>(Wait);
        Assert.Equal((0L, 0, 4), (sent.Step, sent.MicroBatch, sent.StepMicroBatches));
        Assert.Equal(Bits(mine.Gradients), Bits(sent.Gradients));
        var missing = coordinator.ExpectMsg<ParametersMissing>(GradientWorker.ReplicaWait + Wait);
        Assert.Equal((1L, 0, 1L), (missing.Step, missing.MicroBatch, missing.ParametersVersion));

        // The other block of step 0 arrives after all (forwarded by the coordinator): the worker takes the step and computes step 1's work.
        using var engine = new GradientEngine(Config, null, Options.Dropout, Options.LabelSmoothing);
        var expected = Reference(run, engine);
        var other = expected[1].Sum;
        a.Tell(new GradientsComputed(RunId, 0, 2, 2, other.LossSum, other.Count, other.Gradients, other.Correct, 4, run.LearningRate), coordinator.Ref);
        a.Tell(ahead, coordinator.Ref);
        var next = coordinator.ExpectMsg<GradientsComputed>(Wait);
        run.Apply(expected);
        Assert.Equal(Bits(Reference(run, engine)[0].Sum.Gradients), Bits(next.Gradients));
    }

    [Fact]
    public void Work_handed_out_steps_ahead_waits_for_its_version_as_long_as_the_replica_keeps_taking_steps()
    {
        // Four steps; the work of steps 1 to 3 comes at once, and the peer's blocks come slowly, 0.9 s apart:
        // step 3's work waits longer than ReplicaWait in all, but never that long without a step taken (with
        // a second to spare for a slow first pass on a busy machine).
        var run = new TrainingRun(Options with { Epochs = 2 }, Config, Train, ParameterInit.Create(Config, Options.Seed));
        var (a, coordinator) = Start("a");
        var slow = CreateTestProbe();
        IActorRef[] peers = [a, slow.Ref];
        SendState(a, run, coordinator.Ref);
        foreach (var step in new long[] { 0, 1, 2, 3 }) a.Tell(Work(run, step, 0, 2, peers), coordinator.Ref);
        var pause = GradientWorker.ReplicaWait * 0.45;

        using var engine = new GradientEngine(Config, null, Options.Dropout, Options.LabelSmoothing);
        foreach (var step in new long[] { 0, 1, 2 })
        {
            var mine = coordinator.ExpectMsg<GradientsComputed>(Wait);
            var expected = Reference(run, engine);
            Assert.Equal((step, 0), (mine.Step, mine.MicroBatch));
            Assert.Equal(Bits(expected[0].Sum.Gradients), Bits(mine.Gradients));
            Thread.Sleep(pause);
            var other = expected[1].Sum;
            a.Tell(new GradientsComputed(RunId, step, 2, 2, other.LossSum, other.Count, other.Gradients, other.Correct, 4, run.LearningRate), slow.Ref);
            run.Apply(expected);
        }
        // No ParametersMissing came first: step 3's block, computed from the replica's own version 3.
        var last = coordinator.ExpectMsg<GradientsComputed>(Wait);
        Assert.Equal((3L, 0), (last.Step, last.MicroBatch));
        Assert.Equal(Bits(Reference(run, engine)[0].Sum.Gradients), Bits(last.Gradients));
        coordinator.ExpectNoMsg(TimeSpan.FromMilliseconds(300));
    }
}
