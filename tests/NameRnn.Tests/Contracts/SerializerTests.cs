using System.Runtime.Serialization;
using Akka.Actor;
using Akka.Configuration;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using NameRnn.Contracts;

namespace NameRnn.Tests.Contracts;

public sealed class SerializerTests : IDisposable
{
    private readonly ActorSystem _system = ActorSystem.Create("serializer-tests");
    private readonly NameRnnSerializer _serializer;

    public SerializerTests() => _serializer = new NameRnnSerializer((ExtendedActorSystem)_system);

    private object RoundTrip(object message) => _serializer.FromBinary(_serializer.ToBinary(message), _serializer.Manifest(message));

    private static string Text(NonNull<string> s) => s.Get;

    private IActorRef[] Peers(int count) =>
        Enumerable.Range(0, count).Select(i => _peers.GetOrAdd(i, j => _system.ActorOf(Props.Empty, $"peer-{j}"))).ToArray();

    private readonly System.Collections.Concurrent.ConcurrentDictionary<int, IActorRef> _peers = new();

    [Property]
    public void ComputeGradients_round_trips(NonNull<string> runId, long step, int microBatch, long version, bool withParameters,
        float[] parameters, NonNull<string>[][] names, long noiseSeed, int stepMicroBatches, double learningRate, byte peers, NonNull<string> endpoint, long generation)
    {
        var work = names.Select((part, j) => new MicroBatchWork(part.Select(Text).ToArray(), part.Select((_, i) => (i + j) % 18).ToArray(), noiseSeed ^ j)).ToArray();
        // Every other peer with a direct link (host:port), the others without ("").
        var withLinks = peers % 4 > 0 && peers % 2 == 0;
        var endpoints = withLinks ? Enumerable.Range(0, peers % 4).Select(i => i % 2 == 0 ? Text(endpoint) : "").ToArray() : null;
        var message = new ComputeGradients(Text(runId), step, microBatch, version, withParameters ? parameters : null, work, stepMicroBatches, learningRate,
            Peers(peers % 4), endpoints, generation);
        var back = (ComputeGradients)RoundTrip(message);
        Assert.Equal((message.RunId, message.Step, message.MicroBatch, message.ParametersVersion, message.StepMicroBatches, message.Generation),
            (back.RunId, back.Step, back.MicroBatch, back.ParametersVersion, back.StepMicroBatches, back.Generation));
        Assert.Equal(BitConverter.DoubleToInt64Bits(learningRate), BitConverter.DoubleToInt64Bits(back.LearningRate));
        Assert.Equal(message.Peers!.Select(p => p.Path.ToString()), back.Peers!.Select(p => p.Path.ToString()));
        Assert.Equal(message.Peers, back.Peers);
        Assert.Equal(endpoints, back.PeerEndpoints);
        AssertSameFloats(message.Parameters, back.Parameters);
        Assert.Equal(work.Length, back.MicroBatches.Length);
        for (var j = 0; j < work.Length; j++)
        {
            Assert.Equal(work[j].Names, back.MicroBatches[j].Names);
            Assert.Equal(work[j].Labels, back.MicroBatches[j].Labels);
            Assert.Equal(work[j].NoiseSeed, back.MicroBatches[j].NoiseSeed);
        }
    }

    [Property]
    public void GradientsComputed_round_trips(NonNull<string> runId, long step, int microBatch, int microBatches, double lossSum, int count, float[] gradients, int correct,
        int stepMicroBatches, double learningRate, long generation)
    {
        var message = new GradientsComputed(Text(runId), step, microBatch, microBatches, lossSum, count, gradients, correct, stepMicroBatches, learningRate, generation);
        var back = (GradientsComputed)RoundTrip(message);
        Assert.Equal((message.RunId, message.Step, message.MicroBatch, message.MicroBatches, message.Count, message.Correct, message.StepMicroBatches, message.Generation),
            (back.RunId, back.Step, back.MicroBatch, back.MicroBatches, back.Count, back.Correct, back.StepMicroBatches, back.Generation));
        Assert.Equal(BitConverter.DoubleToInt64Bits(lossSum), BitConverter.DoubleToInt64Bits(back.LossSum));
        Assert.Equal(BitConverter.DoubleToInt64Bits(learningRate), BitConverter.DoubleToInt64Bits(back.LearningRate));
        AssertSameFloats(gradients, back.Gradients);
    }

    [Property]
    public void ReplicaState_round_trips(NonNull<string> runId, long version, int part, int parts, NonNull<string> optimizer, long steps,
        double momentum, double weightDecay, double clipNorm, float[] values, long generation)
    {
        var message = new ReplicaState(Text(runId), version, part, parts, Text(optimizer), steps, momentum, weightDecay, clipNorm, values, generation);
        var back = (ReplicaState)RoundTrip(message);
        Assert.Equal((message.RunId, message.Version, message.Part, message.Parts, message.Optimizer, message.OptimizerSteps, message.Generation),
            (back.RunId, back.Version, back.Part, back.Parts, back.Optimizer, back.OptimizerSteps, back.Generation));
        Assert.Equal(new[] { momentum, weightDecay, clipNorm }.Select(BitConverter.DoubleToInt64Bits),
            new[] { back.Momentum, back.WeightDecay, back.ClipNorm }.Select(BitConverter.DoubleToInt64Bits));
        AssertSameFloats(values, back.Values);
    }

    [Property]
    public void A_segment_round_trips_with_its_peers_given_once_for_all_its_units(NonNull<string> runId, long generation, long stateAt, NonNull<string>[][][] steps,
        byte peers, NonNull<string> endpoint, double learningRate)
    {
        var peerRefs = Peers(1 + peers % 3);
        var endpoints = peerRefs.Select((_, i) => i % 2 == 0 ? Text(endpoint) : "").ToArray();
        var units = steps.Select((parts, k) => new ComputeGradients(Text(runId), 10 + k, k % 3, 10 + k, null,
            parts.Select((names, j) => new MicroBatchWork(names.Select(Text).ToArray(), names.Select((_, i) => (i + j + k) % 18).ToArray(), k * 31L + j)).ToArray(),
            1 + k % 4, learningRate / (k + 1), peerRefs, endpoints, generation)).ToArray();
        var message = new ComputeSegment(Text(runId), generation, units, stateAt, peerRefs, endpoints);
        var back = (ComputeSegment)RoundTrip(message);
        Assert.Equal((message.RunId, message.Generation, message.StateAt), (back.RunId, back.Generation, back.StateAt));
        Assert.Equal(peerRefs, back.Peers);
        Assert.Equal(endpoints, back.PeerEndpoints);
        Assert.Equal(units.Length, back.Units.Length);
        for (var k = 0; k < units.Length; k++)
        {
            var (sent, got) = (units[k], back.Units[k]);
            Assert.Equal((sent.RunId, sent.Step, sent.MicroBatch, sent.ParametersVersion, sent.StepMicroBatches, sent.Generation),
                (got.RunId, got.Step, got.MicroBatch, got.ParametersVersion, got.StepMicroBatches, got.Generation));
            Assert.Equal(BitConverter.DoubleToInt64Bits(sent.LearningRate), BitConverter.DoubleToInt64Bits(got.LearningRate));
            Assert.Null(got.Parameters);
            // Each unit names the segment's peers, though they travel once.
            Assert.Equal(peerRefs, got.Peers);
            Assert.Equal(endpoints, got.PeerEndpoints);
            Assert.Equal(sent.MicroBatches.Select(p => (string.Join("\n", p.Names), string.Join(",", p.Labels), p.NoiseSeed)),
                got.MicroBatches.Select(p => (string.Join("\n", p.Names), string.Join(",", p.Labels), p.NoiseSeed)));
        }
    }

    [Property]
    public void A_segment_report_round_trips(NonNull<string> runId, long generation, (long Step, int MicroBatch, double LossSum, int Count, int Correct)[] units)
    {
        var message = new SegmentComputed(Text(runId), generation,
            units.Select(u => new GradientsComputed(Text(runId), u.Step, u.MicroBatch, 1 + u.MicroBatch % 4, u.LossSum, u.Count, [], u.Correct, 8, 0.5, generation)).ToArray());
        var back = (SegmentComputed)RoundTrip(message);
        Assert.Equal((message.RunId, message.Generation), (back.RunId, back.Generation));
        Assert.Equal(message.Units.Select(u => (u.Step, u.MicroBatch, u.MicroBatches, BitConverter.DoubleToInt64Bits(u.LossSum), u.Count, u.Correct, u.Generation, u.Gradients.Length)),
            back.Units.Select(u => (u.Step, u.MicroBatch, u.MicroBatches, BitConverter.DoubleToInt64Bits(u.LossSum), u.Count, u.Correct, u.Generation, u.Gradients.Length)));
    }

    [Property]
    public void The_small_messages_round_trip(NonNull<string> a, NonNull<string> b, NonNull<string> c, int n, int m, long step, float[]? weights)
    {
        var spec = new ModelSpec(Text(a), n, m, n ^ m, m - n, step % 2 == 0, Text(c), n - 2 * m, Text(b));
        object[] messages =
        [
            spec,
            new RegisterWorker(n, Text(a), Text(b), Text(c)),
            new RegisterWorker(n, Text(a), Text(b), Text(c), $"{Text(b)}:{m}"),
            new WorkerAccepted(Text(c), spec, weights, step / 3.0, m / 7.0),
            new WorkerRefused(Text(a)),
            new GradientsFailed(Text(a), step, n, Text(b)),
            new ParametersMissing(Text(b), step, m, step ^ n),
        ];
        foreach (var message in messages)
        {
            var back = RoundTrip(message);
            Assert.Equal(message.GetType(), back.GetType());
            if (message is WorkerAccepted accepted)
            {
                var other = (WorkerAccepted)back;
                Assert.Equal((accepted.RunId, accepted.Model, accepted.Dropout, accepted.LabelSmoothing), (other.RunId, other.Model, other.Dropout, other.LabelSmoothing));
                AssertSameFloats(accepted.ClassWeights, other.ClassWeights);
            }
            else
            {
                Assert.Equal(message, back);
            }
        }
    }

    [Theory]
    [InlineData(26_000)]
    [InlineData(1_000_000)]
    public void A_parameter_or_gradient_message_costs_its_floats_plus_at_most_one_percent_and_256_bytes(int count)
    {
        var values = Enumerable.Range(0, count).Select(i => (float)Math.Sin(i)).ToArray();
        var raw = count * sizeof(float);
        var names = Enumerable.Range(0, 32).Select(i => $"Name{i}").ToArray();
        var compute = new ComputeGradients("20261127-000000-abcdef", 123_456, 7, 123_456, values, [new MicroBatchWork(names, new int[32], 99)]);
        var namesBytes = 4 + 4 + names.Sum(n => n.Length + 4) + 4 + 32 * 4 + 8;
        Assert.True(_serializer.ToBinary(compute).Length <= raw * 1.01 + 256 + namesBytes);
        var computed = new GradientsComputed("20261127-000000-abcdef", 123_456, 7, 4, 12.5, 32, values, 30, 8, 1e-3);
        Assert.True(_serializer.ToBinary(computed).Length <= raw * 1.01 + 256);
        var state = new ReplicaState("20261127-000000-abcdef", 123_456, 1, 3, "adam", 123_456, 0.9, 0.01, 1.0, values);
        Assert.True(_serializer.ToBinary(state).Length <= raw * 1.01 + 256);
    }

    [Property(MaxTest = 300)]
    public void A_truncated_payload_raises_a_serialization_error(float[] gradients, PositiveInt cut)
    {
        var message = new GradientsComputed("run", 1, 2, 1, 3.0, 4, gradients);
        var bytes = _serializer.ToBinary(message);
        var keep = Math.Max(0, bytes.Length - cut.Get);
        Assert.Throws<SerializationException>(() => _serializer.FromBinary(bytes[..keep], _serializer.Manifest(message)));
    }

    [Fact]
    public void A_segment_or_its_report_cut_anywhere_raises_a_serialization_error()
    {
        var unit = new ComputeGradients("run", 3, 0, 3, null, [new MicroBatchWork(["Abe", "Bo"], [0, 1], 7)], 2, 0.1, Peers(2), ["127.0.0.1:4055", ""], 2);
        object[] messages =
        [
            new ComputeSegment("run", 2, [unit, unit with { Step = 4, ParametersVersion = 4 }], 5, Peers(2), ["127.0.0.1:4055", ""]),
            new SegmentComputed("run", 2, [new GradientsComputed("run", 3, 0, 1, 1.5, 2, [], 1, 2, 0.1, 2)]),
        ];
        foreach (var message in messages)
        {
            var bytes = _serializer.ToBinary(message);
            for (var keep = 0; keep < bytes.Length; keep++)
                Assert.Throws<SerializationException>(() => _serializer.FromBinary(bytes[..keep], _serializer.Manifest(message)));
        }
    }

    [Property(MaxTest = 500)]
    public void Random_bytes_give_a_message_or_a_serialization_error_and_nothing_else(byte[] bytes, int which)
    {
        string[] manifests = ["MS", "RW", "WA", "WR", "CG", "GC", "GF", "PM", "RS", "CS", "SC", "??"];
        var manifest = manifests[Math.Abs(which % manifests.Length)];
        try
        {
            var message = _serializer.FromBinary(bytes, manifest);
            Assert.IsAssignableFrom<INameRnnMessage>(message);
        }
        catch (SerializationException)
        {
        }
    }

    [Fact]
    public void A_corrupted_length_raises_a_serialization_error()
    {
        var bytes = _serializer.ToBinary(new ComputeGradients("run", 1, 0, 1, [1f, 2f], [new MicroBatchWork(["Ann"], [3], 5)]));
        bytes[1 + 4 + 3 + 8 + 4 + 8] = 0x7F; // the low byte of the parameter count
        Assert.Throws<SerializationException>(() => _serializer.FromBinary(bytes, "CG"));
    }

    private static void AssertSameFloats(float[]? expected, float[]? actual)
    {
        Assert.Equal(expected is null, actual is null);
        if (expected is null) return;
        Assert.Equal(expected.Select(BitConverter.SingleToInt32Bits), actual!.Select(BitConverter.SingleToInt32Bits));
    }

    public void Dispose() => _system.Dispose();
}
