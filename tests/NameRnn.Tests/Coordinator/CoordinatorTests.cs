using Akka.Actor;
using Akka.TestKit;
using Akka.TestKit.Xunit2;
using NameRnn.Contracts;
using NameRnn.Coordinator.Training;
using NameRnn.Model.Data;
using NameRnn.Model.Network;
using NameRnn.Model.Training;
using NameRnn.Worker;

namespace NameRnn.Tests.Coordinator;

/// <summary>The coordinator with TestKit probes standing in for workers, which reply with gradients chosen by the test.</summary>
public class CoordinatorTests() : TestKit(TorchDispatcher.Hocon(localThreads: null))
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    /// <summary>
    /// One step of four one-name micro-batches, handed out one micro-batch per unit of work (unless the
    /// test says otherwise); SGD with learning rate 1 and no momentum, clipping, weighting or schedule.
    /// </summary>
    private static TrainingPlan Plan(int minWorkers)
    {
        var options = new TrainingOptions
        {
            Epochs = 1, BatchSize = 4, MicroBatch = 1, Cell = Cells.Rnn, Hidden = 2, Optimizer = Optimizers.Sgd,
            LearningRate = 1, Momentum = 0, Schedule = Schedules.Constant, ClipNorm = 0, ClassWeightPower = 0, Seed = 5,
        };
        LabelledName[] train = [new("Abe", 0), new("Bo", 1), new("Cyd", 0), new("Dee", 1)];
        LabelledName[] held = [new("Ed", 0), new("Fa", 1)];
        return new TrainingPlan("run-1", options, ModelConfig.Create(Cells.Rnn, 2, 2), ["A", "B"], train, held, held, minWorkers) { PipelineDepth = 1, LargestUnit = 1, Replicas = false };
    }

    private static float[] Filled(int count, float value) => Enumerable.Repeat(value, count).ToArray();

    private TestProbe Register(IActorRef coordinator, string id)
    {
        var probe = CreateTestProbe(id);
        coordinator.Tell(new RegisterWorker(Protocol.Version, id, ModelConfig.Format, ""), probe.Ref);
        probe.ExpectMsg<WorkerAccepted>(Wait);
        return probe;
    }

    private static void Reply(TestProbe probe, IActorRef coordinator, ComputeGradients work, float value, int? microBatch = null, long? step = null, int? microBatches = null) =>
        coordinator.Tell(new GradientsComputed(work.RunId, step ?? work.Step, microBatch ?? work.MicroBatch, microBatches ?? work.MicroBatches.Length, 0.5,
            work.MicroBatches.Sum(m => m.Names.Length), Filled(Plan(1).Model.ParameterCount, value)), probe.Ref);

    /// <summary>A coordinator with workers "a" and "b" registered and started, and the first work each got.</summary>
    private (IActorRef Coordinator, TestProbe A, TestProbe B, ComputeGradients WorkA, ComputeGradients WorkB) StartWithTwoWorkers(TrainingPlan plan)
    {
        var (coordinator, a, b) = StartTwo(plan);
        return (coordinator, a, b, a.ExpectMsg<ComputeGradients>(Wait), b.ExpectMsg<ComputeGradients>(Wait));
    }

    /// <summary>A coordinator with workers "a" and "b" registered and started.</summary>
    private (IActorRef Coordinator, TestProbe A, TestProbe B) StartTwo(TrainingPlan plan)
    {
        var coordinator = Sys.ActorOf(TrainingCoordinator.Props(plan));
        var a = Register(coordinator, "a");
        var b = Register(coordinator, "b");
        coordinator.Tell(StartTraining.Instance, TestActor);
        return (coordinator, a, b);
    }

    [Fact]
    public void Micro_batch_sums_are_added_in_the_fixed_pairwise_order_and_late_or_duplicate_replies_are_dropped()
    {
        var plan = Plan(minWorkers: 2);
        var (coordinator, a, b, w0, w1) = StartWithTwoWorkers(plan);
        Assert.Equal((0, 1), (w0.MicroBatch, w1.MicroBatch));
        Assert.NotNull(w0.Parameters);

        // Float32 addition is not associative (1e8 + 5 rounds to 1e8 + 8). In the tree's order the sum is
        // (1e8 + 5) + (1 + 3) = 100000016; adding one by one in any order gives 100000008 or 1e8.
        Reply(b, coordinator, w1, 5f);
        Reply(b, coordinator, w1, 1000f);                  // duplicate of micro-batch 1: dropped
        Reply(b, coordinator, w1, 1000f, step: w1.Step + 7); // not the current step: dropped
        var w2 = b.ExpectMsg<ComputeGradients>(Wait);      // b is idle first, so it gets the next one
        Assert.Null(w2.Parameters);                        // b already has this version
        Reply(a, coordinator, w0, 1e8f);
        var w3 = a.ExpectMsg<ComputeGradients>(Wait);
        Assert.Equal((2, 3), (w2.MicroBatch, w3.MicroBatch));
        Reply(a, coordinator, w3, 3f);
        Reply(b, coordinator, w2, 1f);

        var done = ExpectMsg<TrainingCompleted>(Wait);
        var initial = plan.InitialParameters();
        var expected = initial.Select(p => p - (((1e8f + 5f) + (1f + 3f)) * (1f / 4))).ToArray();
        Assert.Equal(expected, done.FinalParameters);
        Assert.Equal(2, done.MicroBatchesPerWorker["a"]);
        Assert.Equal(2, done.MicroBatchesPerWorker["b"]);
    }

    [Fact]
    public void With_a_pipeline_a_worker_holds_its_next_micro_batch_before_it_replies()
    {
        var plan = Plan(minWorkers: 1) with { PipelineDepth = 2 };
        var coordinator = Sys.ActorOf(TrainingCoordinator.Props(plan));
        var a = Register(coordinator, "a");
        coordinator.Tell(StartTraining.Instance, TestActor);
        var first = a.ExpectMsg<ComputeGradients>(Wait);
        var second = a.ExpectMsg<ComputeGradients>(Wait);
        Assert.Equal((0, 1), (first.MicroBatch, second.MicroBatch));
        Assert.NotNull(first.Parameters);
        Assert.Null(second.Parameters);
        a.ExpectNoMsg(TimeSpan.FromMilliseconds(200));
        Reply(a, coordinator, first, 1f);
        Assert.Equal(2, a.ExpectMsg<ComputeGradients>(Wait).MicroBatch);
    }

    [Fact]
    public void A_dead_workers_micro_batch_goes_to_another_worker_and_counts_once()
    {
        var plan = Plan(minWorkers: 2);
        var coordinator = Sys.ActorOf(TrainingCoordinator.Props(plan));
        var a = Register(coordinator, "a");
        var b = Register(coordinator, "b");
        coordinator.Tell(StartTraining.Instance, TestActor);
        var w0 = a.ExpectMsg<ComputeGradients>(Wait);
        var w1 = b.ExpectMsg<ComputeGradients>(Wait);

        Watch(b.Ref);
        Sys.Stop(b.Ref);
        ExpectTerminated(b.Ref, Wait);
        float Value(int microBatch) => microBatch + 1;
        Reply(a, coordinator, w0, Value(w0.MicroBatch));
        var served = new List<int> { w0.MicroBatch };
        while (served.Count < 4)
        {
            var work = a.ExpectMsg<ComputeGradients>(Wait);
            served.Add(work.MicroBatch);
            Reply(a, coordinator, work, Value(work.MicroBatch));
        }

        var done = ExpectMsg<TrainingCompleted>(Wait);
        Assert.Equal([0, 1, 2, 3], served.Order());
        Assert.Contains(w1.MicroBatch, served);
        var expected = plan.InitialParameters().Select(p => p - ((Value(0) + Value(1)) + (Value(2) + Value(3))) * (1f / 4)).ToArray();
        Assert.Equal(expected, done.FinalParameters);
        Assert.Equal(4, done.MicroBatchesPerWorker["a"]);
        a.ExpectNoMsg(TimeSpan.FromMilliseconds(200));
    }

    [Fact]
    public void Each_worker_gets_one_unit_of_the_step_and_a_reply_for_the_wrong_micro_batches_is_dropped()
    {
        var plan = Plan(minWorkers: 2) with { LargestUnit = int.MaxValue };
        var (coordinator, a, b, wa, wb) = StartWithTwoWorkers(plan);
        Assert.Equal((0, 2, 2, 2), (wa.MicroBatch, wa.MicroBatches.Length, wb.MicroBatch, wb.MicroBatches.Length));
        Assert.Equal(plan.Train.Select(n => n.Name).Order(), wa.MicroBatches.Concat(wb.MicroBatches).SelectMany(m => m.Names).Order());
        Assert.Equal(4, wa.MicroBatches.Concat(wb.MicroBatches).Select(m => m.NoiseSeed).Distinct().Count());

        Reply(b, coordinator, wb, 1000f, microBatches: 1); // claims one micro-batch of a two-micro-batch unit: dropped, and b gets it again
        var again = b.ExpectMsg<ComputeGradients>(Wait);
        Assert.Equal((2, 2), (again.MicroBatch, again.MicroBatches.Length));
        Reply(a, coordinator, wa, 1e8f + 8f);  // stands for (m0 + m1), summed by the worker
        Reply(b, coordinator, again, 4f);      // stands for (m2 + m3)

        var done = ExpectMsg<TrainingCompleted>(Wait);
        var expected = plan.InitialParameters().Select(p => p - ((1e8f + 8f) + 4f) * (1f / 4)).ToArray();
        Assert.Equal(expected, done.FinalParameters);
        Assert.Equal(2, done.MicroBatchesPerWorker["a"]);
        Assert.Equal(2, done.MicroBatchesPerWorker["b"]);
    }

    [Theory]
    [InlineData(Protocol.Version + 1, null, "", "protocol version")]
    [InlineData(Protocol.Version, "0123456789abcdef", "", "model format")]
    [InlineData(Protocol.Version, null, "guess", "secret")]
    public void A_mismatched_worker_is_refused_and_gets_no_work(int version, string? format, string secret, string reason)
    {
        var plan = Plan(minWorkers: 1) with { ClusterSecret = "" };
        var coordinator = Sys.ActorOf(TrainingCoordinator.Props(plan));
        var stranger = CreateTestProbe();
        coordinator.Tell(new RegisterWorker(version, "stranger", format ?? ModelConfig.Format, secret), stranger.Ref);
        var refused = stranger.ExpectMsg<WorkerRefused>(Wait);
        Assert.Contains(reason, refused.Reason);

        coordinator.Tell(StartTraining.Instance, TestActor);
        var good = Register(coordinator, "good");
        good.ExpectMsg<ComputeGradients>(Wait);
        stranger.ExpectNoMsg(TimeSpan.FromMilliseconds(300));
    }

    [Fact]
    public void A_worker_with_the_cluster_secret_is_accepted()
    {
        var coordinator = Sys.ActorOf(TrainingCoordinator.Props(Plan(minWorkers: 1) with { ClusterSecret = "s3cret" }));
        var probe = CreateTestProbe();
        coordinator.Tell(new RegisterWorker(Protocol.Version, "w", ModelConfig.Format, "s3cret"), probe.Ref);
        probe.ExpectMsg<WorkerAccepted>(Wait);
    }

    [Fact]
    public void A_micro_batch_that_keeps_failing_stops_the_run_naming_its_names()
    {
        var plan = Plan(minWorkers: 1);
        var coordinator = Sys.ActorOf(TrainingCoordinator.Props(plan));
        var a = Register(coordinator, "a");
        coordinator.Tell(StartTraining.Instance, TestActor);
        var names = new List<string>();
        for (var attempt = 0; attempt < plan.MaxAttemptsPerMicroBatch; attempt++)
        {
            var work = a.ExpectMsg<ComputeGradients>(Wait);
            names.AddRange(work.MicroBatches.SelectMany(m => m.Names));
            Assert.Equal(0, work.MicroBatch);
            coordinator.Tell(new GradientsFailed(work.RunId, work.Step, work.MicroBatch, "boom"), a.Ref);
        }
        var failed = ExpectMsg<TrainingFailed>(Wait);
        Assert.Contains("boom", failed.Reason);
        Assert.All(names, name => Assert.Contains(name, failed.Reason));
    }

    /// <summary>Two steps of two one-name micro-batches, with workers that keep replicas.</summary>
    private static TrainingPlan TwoStepPlan() => Plan(minWorkers: 2) with
    {
        Options = Plan(1).Options with { BatchSize = 2 }, Replicas = true,
    };

    /// <summary>The run's state in parts, as a worker gets it: the parameters, then the optimizer's buffers.</summary>
    private static List<ReplicaState> ExpectState(TestProbe probe, long version)
    {
        var first = probe.ExpectMsg<ReplicaState>(Wait);
        var parts = new List<ReplicaState> { first };
        while (parts.Count < first.Parts) parts.Add(probe.ExpectMsg<ReplicaState>(Wait));
        Assert.All(parts, p => Assert.Equal(version, p.Version));
        Assert.Equal(Enumerable.Range(0, first.Parts), parts.Select(p => p.Part));
        return parts;
    }

    [Fact]
    public void With_replicas_the_state_goes_out_once_and_the_next_steps_work_goes_out_ahead_naming_the_steps_workers()
    {
        var plan = TwoStepPlan();
        var (coordinator, a, b) = StartTwo(plan);
        var initial = plan.InitialParameters();
        var work = new Dictionary<(TestProbe, long), ComputeGradients>();
        foreach (var probe in new[] { a, b })
        {
            var state = ExpectState(probe, 0);
            Assert.Equal(initial, state[0].Values);
            Assert.Equal((Optimizers.Sgd, 0L, 0.0), (state[0].Optimizer, state[0].OptimizerSteps, state[0].ClipNorm));
            // Step 1's work comes before any reply to step 0, without parameters: the worker will take step 0 itself.
            foreach (var step in new long[] { 0, 1 })
            {
                var unit = probe.ExpectMsg<ComputeGradients>(Wait);
                Assert.Equal((step, step, 2, 1.0), (unit.Step, unit.ParametersVersion, unit.StepMicroBatches, unit.LearningRate));
                Assert.Null(unit.Parameters);
                Assert.Equal(new[] { a.Ref, b.Ref }.Order(), unit.Peers!.Order());
                work[(probe, step)] = unit;
            }
        }

        // A worker that comes in during step 0 gets the state at version 0 and every block of the steps handed out, forwarded.
        var c = Register(coordinator, "c");
        ExpectState(c, 0);
        Reply(a, coordinator, work[(a, 0)], 1f);
        Reply(b, coordinator, work[(b, 0)], 3f);
        Reply(a, coordinator, work[(a, 1)], 5f);
        Reply(b, coordinator, work[(b, 1)], 7f);
        var forwarded = Enumerable.Range(0, 4).Select(_ => c.ExpectMsg<GradientsComputed>(Wait)).ToList();
        Assert.Equal([(0L, 0), (0L, 1), (1L, 0), (1L, 1)], forwarded.Select(f => (f.Step, f.MicroBatch)).Order());
        Assert.All(forwarded, f => Assert.Equal((2, 1.0), (f.StepMicroBatches, f.LearningRate)));

        var done = ExpectMsg<TrainingCompleted>(Wait);
        // SGD, learning rate 1, no momentum: two steps of the mean gradient, (1 + 3) / 2 and then (5 + 7) / 2.
        var expected = initial.Select(p => p - (1f + 3f) * (1f / 2) - (5f + 7f) * (1f / 2)).ToArray();
        Assert.Equal(expected, done.FinalParameters);
        Assert.Equal(2, done.MicroBatchesPerWorker["a"]);
        Assert.Equal(2, done.MicroBatchesPerWorker["b"]);
        Assert.Equal(0, done.MicroBatchesPerWorker["c"]);
        foreach (var probe in new[] { a, b, c }) probe.ExpectNoMsg(TimeSpan.FromMilliseconds(200));
    }

    [Fact]
    public void With_replicas_the_work_of_up_to_steps_ahead_steps_goes_out_before_the_current_step_is_in_and_the_next_once_it_is()
    {
        // Five steps of two one-name micro-batches; the work of three steps after the current one goes out ahead.
        LabelledName[] train = Enumerable.Range(0, 10).Select(i => new LabelledName(new string((char)('A' + i), 2 + i % 3), i % 2)).ToArray();
        var plan = Plan(minWorkers: 2) with { Train = train, Options = Plan(1).Options with { BatchSize = 2 }, Replicas = true, StepsAhead = 3 };
        var (coordinator, a, b) = StartTwo(plan);
        var work = new Dictionary<(TestProbe, long), ComputeGradients>();
        void Expect(TestProbe probe, long step)
        {
            var unit = probe.ExpectMsg<ComputeGradients>(Wait);
            Assert.Equal((step, step, 2), (unit.Step, unit.ParametersVersion, unit.StepMicroBatches));
            Assert.Null(unit.Parameters);
            Assert.Equal(new[] { a.Ref, b.Ref }.Order(), unit.Peers!.Order());
            work[(probe, step)] = unit;
        }
        foreach (var probe in new[] { a, b })
        {
            ExpectState(probe, 0);
            for (var step = 0L; step <= 3; step++) Expect(probe, step);
        }
        // Not the fifth step's: that is four steps ahead of step 0, which is not in yet.
        a.ExpectNoMsg(TimeSpan.FromMilliseconds(300));
        b.ExpectNoMsg(TimeSpan.Zero);

        Reply(a, coordinator, work[(a, 0)], 1f);
        a.ExpectNoMsg(TimeSpan.FromMilliseconds(200));
        Reply(b, coordinator, work[(b, 0)], 2f);
        Expect(a, 4);
        Expect(b, 4);
        for (var step = 1L; step <= 4; step++)
        {
            Reply(a, coordinator, work[(a, step)], 2 * step + 1);
            Reply(b, coordinator, work[(b, step)], 2 * step + 2);
        }
        var done = ExpectMsg<TrainingCompleted>(Wait);
        // SGD, learning rate 1, no momentum: step s subtracts the mean of its two blocks, (4s + 3) / 2, in order.
        var expected = plan.InitialParameters().ToArray();
        for (var step = 0; step < 5; step++)
        {
            var mean = ((2f * step + 1) + (2f * step + 2)) * (1f / 2);
            for (var i = 0; i < expected.Length; i++) expected[i] -= mean;
        }
        Assert.Equal(expected, done.FinalParameters);
        Assert.Equal(5, done.MicroBatchesPerWorker["a"]);
        Assert.Equal(5, done.MicroBatchesPerWorker["b"]);
    }

    /// <summary>Two epochs of five steps of two one-name micro-batches, in segments of up to three steps.</summary>
    private static TrainingPlan SegmentPlan()
    {
        LabelledName[] train = Enumerable.Range(0, 10).Select(i => new LabelledName(new string((char)('A' + i), 2 + i % 3), i % 2)).ToArray();
        return Plan(minWorkers: 2) with { Train = train, Options = Plan(1).Options with { BatchSize = 2, Epochs = 2 }, Replicas = true, SegmentSteps = 3 };
    }

    /// <summary>A worker's report on a segment: loss sum 0.25 per name of each unit, every name right.</summary>
    private static SegmentComputed Report(ComputeSegment segment) =>
        new(segment.RunId, segment.Generation, segment.Units.Select(u => new GradientsComputed(u.RunId, u.Step, u.MicroBatch, u.MicroBatches.Length,
            0.25 * u.MicroBatches.Sum(m => m.Names.Length), u.MicroBatches.Sum(m => m.Names.Length), [], u.MicroBatches.Sum(m => m.Names.Length), u.StepMicroBatches, u.LearningRate, u.Generation)).ToArray());

    /// <summary>The state a worker sends at <paramref name="version"/>: every parameter <paramref name="value"/>, SGD's one buffer.</summary>
    private static void SendWorkerState(TestProbe worker, IActorRef coordinator, long version, float value, long generation)
    {
        var count = Plan(1).Model.ParameterCount;
        foreach (var part in ReplicaStates.ToMessages("run-1", version, Filled(count, value), new OptimizerState(Optimizers.Sgd, version, [new float[count]]), 0, 0, 0, generation))
            coordinator.Tell(part, worker.Ref);
    }

    [Fact]
    public void With_segments_each_worker_gets_many_steps_in_one_message_and_the_run_takes_the_state_a_worker_sends_at_each_segments_end()
    {
        var plan = SegmentPlan();
        var (coordinator, a, b) = StartTwo(plan);
        foreach (var probe in new[] { a, b }) Assert.All(ExpectState(probe, 0), p => Assert.Equal(1, p.Generation));
        // Two segments out: steps 0-2, then 3-4 (an epoch's end ends a segment); "a" (the first by id) sends the state at their ends.
        var segments = new Dictionary<(TestProbe, long), ComputeSegment>();
        foreach (var (first, end) in new[] { (0L, 3L), (3L, 5L) })
            foreach (var (probe, microBatch) in new[] { (a, 0), (b, 1) })
            {
                var segment = probe.ExpectMsg<ComputeSegment>(Wait);
                Assert.Equal(Enumerable.Range((int)first, (int)(end - first)).Select(s => (long)s), segment.Units.Select(u => u.Step));
                Assert.All(segment.Units, u => Assert.Equal((microBatch, 1, 2, 1L), (u.MicroBatch, u.MicroBatches.Length, u.StepMicroBatches, u.Generation)));
                Assert.All(segment.Units, u => Assert.Equal(u.Step, u.ParametersVersion));
                Assert.All(segment.Units, u => Assert.Null(u.Parameters));
                Assert.Equal(new[] { a.Ref, b.Ref }, segment.Peers);
                Assert.Equal(probe == a ? end : -1, segment.StateAt);
                segments[(probe, first)] = segment;
            }
        // No third segment before the first is committed, which takes every report of it and the state.
        coordinator.Tell(Report(segments[(a, 0)]), a.Ref);
        coordinator.Tell(Report(segments[(b, 0)]), b.Ref);
        a.ExpectNoMsg(TimeSpan.FromMilliseconds(300));
        // A report of another generation, or a state from a worker not asked for it, changes nothing.
        coordinator.Tell(Report(segments[(a, 3)] with { Generation = 7 }), a.Ref);
        SendWorkerState(b, coordinator, 3, -9f, generation: 1);
        a.ExpectNoMsg(TimeSpan.FromMilliseconds(200));
        SendWorkerState(a, coordinator, 3, 3f, generation: 1);
        var third = new[] { a, b }.ToDictionary(p => p, p => p.ExpectMsg<ComputeSegment>(Wait));
        Assert.All(third.Values, segment => Assert.Equal(new long[] { 5, 6, 7 }, segment.Units.Select(u => u.Step)));

        coordinator.Tell(Report(segments[(a, 3)]), a.Ref);
        coordinator.Tell(Report(segments[(b, 3)]), b.Ref);
        SendWorkerState(a, coordinator, 5, 5f, generation: 1);
        var fourth = new[] { a, b }.ToDictionary(p => p, p => p.ExpectMsg<ComputeSegment>(Wait));
        Assert.All(fourth.Values, segment => Assert.Equal(new long[] { 8, 9 }, segment.Units.Select(u => u.Step)));
        // The last segment is in before the one before it: it waits for that one to be committed first.
        foreach (var probe in new[] { a, b }) coordinator.Tell(Report(fourth[probe]), probe.Ref);
        SendWorkerState(a, coordinator, 10, 10f, generation: 1);
        ExpectNoMsg(TimeSpan.FromMilliseconds(300));
        foreach (var probe in new[] { a, b }) coordinator.Tell(Report(third[probe]), probe.Ref);
        SendWorkerState(a, coordinator, 8, 8f, generation: 1);

        var done = ExpectMsg<TrainingCompleted>(Wait);
        Assert.Equal(Filled(plan.Model.ParameterCount, 10f), done.FinalParameters);
        Assert.Equal(10, done.MicroBatchesPerWorker["a"]);
        Assert.Equal(10, done.MicroBatchesPerWorker["b"]);
        // The epochs' training loss and accuracy from the reports: 0.25 per name, every name right.
        Assert.All(done.Epochs, e => Assert.Equal((0.25, 1.0), (e.TrainLoss, e.TrainAccuracy)));
        Assert.Equal(2, done.Epochs.Count);
    }

    [Fact]
    public void With_segments_an_epochs_time_counts_the_evaluation_the_workers_trained_through()
    {
        // A validation split large enough that evaluating it takes a while; the workers go on meanwhile.
        var validation = Enumerable.Range(0, 60_000).Select(i => new LabelledName(new string((char)('a' + i % 26), 3 + i % 9), i % 2)).ToArray();
        var plan = SegmentPlan() with { Validation = validation };
        var (coordinator, a, b) = StartTwo(plan);
        ExpectState(a, 0);
        ExpectState(b, 0);
        var segments = new[] { a, b }.ToDictionary(p => p, p => new List<ComputeSegment> { p.ExpectMsg<ComputeSegment>(Wait), p.ExpectMsg<ComputeSegment>(Wait) });
        void Finish(int index, long version, float value)
        {
            foreach (var probe in new[] { a, b }) coordinator.Tell(Report(segments[probe][index]), probe.Ref);
            SendWorkerState(a, coordinator, version, value, generation: 1);
        }
        Finish(0, 3, 3f);
        foreach (var probe in new[] { a, b }) segments[probe].Add(probe.ExpectMsg<ComputeSegment>(Wait));
        // Epoch 1 ends at step 5: the next segment goes out once its evaluation is done.
        var clock = System.Diagnostics.Stopwatch.StartNew();
        Finish(1, 5, 5f);
        foreach (var probe in new[] { a, b }) segments[probe].Add(probe.ExpectMsg<ComputeSegment>(Wait));
        var evaluation = clock.Elapsed;
        Thread.Sleep(200);
        Finish(2, 8, 8f);
        var between = clock.Elapsed;
        Finish(3, 10, 10f);
        var done = ExpectMsg<TrainingCompleted>(Wait);
        // Epoch 2 ran from the commit of step 5 to that of step 10, the evaluation of epoch 1 included.
        Assert.True(done.Epochs[1].Seconds > between.TotalSeconds - evaluation.TotalSeconds / 2,
            $"epoch 2 took {done.Epochs[1].Seconds:F3} s by the coordinator's clock, {between.TotalSeconds:F3} s here, of which {evaluation.TotalSeconds:F3} s the evaluation");
    }

    [Fact]
    public void With_segments_no_word_for_the_assignment_timeout_per_step_sends_the_run_back_and_the_work_out_again()
    {
        var plan = SegmentPlan() with { AssignmentTimeout = TimeSpan.FromMilliseconds(150) };
        var (coordinator, a, b) = StartTwo(plan);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        foreach (var probe in new[] { a, b })
        {
            ExpectState(probe, 0);
            probe.ExpectMsg<ComputeSegment>(Wait);
            probe.ExpectMsg<ComputeSegment>(Wait);
        }
        // The first segment has three steps: 0.45 s without a word, then the state of generation 2 and the same steps again.
        foreach (var probe in new[] { a, b })
        {
            var state = ExpectState(probe, 0);
            Assert.All(state, p => Assert.Equal(2, p.Generation));
            var again = probe.ExpectMsg<ComputeSegment>(Wait);
            Assert.Equal(2, again.Generation);
            Assert.Equal(new long[] { 0, 1, 2 }, again.Units.Select(u => u.Step));
        }
        Assert.True(clock.Elapsed >= TimeSpan.FromMilliseconds(450), $"went back after {clock.Elapsed.TotalMilliseconds:F0} ms");
    }

    [Fact]
    public void With_segments_a_worker_that_dies_sends_the_run_back_to_the_committed_state_and_the_others_take_the_steps_after_it_anew()
    {
        var plan = SegmentPlan();
        var (coordinator, a, b) = StartTwo(plan);
        ExpectState(a, 0);
        ExpectState(b, 0);
        var first = (a.ExpectMsg<ComputeSegment>(Wait), b.ExpectMsg<ComputeSegment>(Wait));
        a.ExpectMsg<ComputeSegment>(Wait);
        b.ExpectMsg<ComputeSegment>(Wait);
        coordinator.Tell(Report(first.Item1), a.Ref);
        coordinator.Tell(Report(first.Item2), b.Ref);
        SendWorkerState(a, coordinator, 3, 3f, generation: 1);
        a.ExpectMsg<ComputeSegment>(Wait);

        Sys.Stop(b.Ref);
        // Generation 2 from the committed state, step 3: every parameter 3, SGD at step 3.
        var state = ExpectState(a, 3);
        Assert.All(state, p => Assert.Equal(2, p.Generation));
        Assert.Equal(Filled(plan.Model.ParameterCount, 3f), state[0].Values);
        Assert.Equal(3, state[0].OptimizerSteps);
        var again = a.ExpectMsg<ComputeSegment>(Wait);
        Assert.Equal((2L, 5L), (again.Generation, again.StateAt));
        // The survivor alone: both units of each step (of one micro-batch each, as the plan's largest unit).
        Assert.Equal(new[] { (3L, 0, 1), (3L, 1, 1), (4L, 0, 1), (4L, 1, 1) }, again.Units.Select(u => (u.Step, u.MicroBatch, u.MicroBatches.Length)));
        Assert.Equal(new[] { a.Ref }, again.Peers);
        var next = a.ExpectMsg<ComputeSegment>(Wait);
        // A late report of generation 1 for a unit taken anew (of another loss) is dropped.
        var late = again.Units[1];
        coordinator.Tell(new SegmentComputed("run-1", 1, [new GradientsComputed("run-1", late.Step, late.MicroBatch, 1, 100, 1, [], 0, 2, 1, 1)]), a.Ref);
        coordinator.Tell(Report(again), a.Ref);
        SendWorkerState(a, coordinator, 5, 5f, generation: 2);
        var last = a.ExpectMsg<ComputeSegment>(Wait);
        coordinator.Tell(Report(next), a.Ref);
        SendWorkerState(a, coordinator, 8, 8f, generation: 2);
        coordinator.Tell(Report(last), a.Ref);
        SendWorkerState(a, coordinator, 10, 10f, generation: 2);
        var done = ExpectMsg<TrainingCompleted>(Wait);
        Assert.Equal(Filled(plan.Model.ParameterCount, 10f), done.FinalParameters);
        // Steps 0-2 of each, then steps 3-9 of both micro-batches on "a": nothing of the dropped segments counts.
        Assert.Equal(3 + 14, done.MicroBatchesPerWorker["a"]);
        Assert.Equal(3, done.MicroBatchesPerWorker["b"]);
        Assert.All(done.Epochs, e => Assert.Equal((0.25, 1.0), (e.TrainLoss, e.TrainAccuracy)));
    }

    [Fact]
    public void A_worker_that_misses_a_version_gets_the_state_again_with_the_blocks_of_the_step_and_its_work_back()
    {
        var plan = TwoStepPlan();
        var (coordinator, a, b) = StartTwo(plan);
        ExpectState(a, 0);
        ExpectState(b, 0);
        var (a0, a1) = (a.ExpectMsg<ComputeGradients>(Wait), a.ExpectMsg<ComputeGradients>(Wait));
        var (b0, b1) = (b.ExpectMsg<ComputeGradients>(Wait), b.ExpectMsg<ComputeGradients>(Wait));
        Reply(b, coordinator, b0, 3f);

        // a never got b's block of step 0, so it cannot have version 1 for its unit of step 1.
        coordinator.Tell(new ParametersMissing(a1.RunId, a1.Step, a1.MicroBatch, a1.ParametersVersion), a.Ref);
        ExpectState(a, 0);
        var block = a.ExpectMsg<GradientsComputed>(Wait);
        Assert.Equal((0L, b0.MicroBatch, 2), (block.Step, block.MicroBatch, block.StepMicroBatches));
        var again = a.ExpectMsg<ComputeGradients>(Wait);
        Assert.Equal((1L, a1.MicroBatch), (again.Step, again.MicroBatch));

        Reply(a, coordinator, a0, 1f);
        Reply(a, coordinator, again, 5f);
        Reply(b, coordinator, b1, 7f);
        var done = ExpectMsg<TrainingCompleted>(Wait);
        var expected = plan.InitialParameters().Select(p => p - (1f + 3f) * (1f / 2) - (5f + 7f) * (1f / 2)).ToArray();
        Assert.Equal(expected, done.FinalParameters);
    }
}
