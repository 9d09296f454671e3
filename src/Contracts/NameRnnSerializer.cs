using System.Runtime.Serialization;
using Akka.Actor;
using Akka.Serialization;

namespace NameRnn.Contracts;

/// <summary>
/// The binary serializer for every <see cref="INameRnnMessage"/>: a one-byte format version, then
/// the fields in order, floats as raw little-endian float32. A parameter or gradient message costs
/// its float bytes plus a few dozen bytes. Anything malformed raises a
/// <see cref="SerializationException"/>, which the remoting layer logs and drops.
/// </summary>
public sealed class NameRnnSerializer(ExtendedActorSystem system) : SerializerWithStringManifest(system)
{
    public const int SerializerId = 8_117;
    private const byte FormatVersion = 5;

    private const string ModelSpecManifest = "MS";
    private const string RegisterManifest = "RW";
    private const string AcceptedManifest = "WA";
    private const string RefusedManifest = "WR";
    private const string ComputeManifest = "CG";
    private const string ComputedManifest = "GC";
    private const string FailedManifest = "GF";
    private const string MissingManifest = "PM";
    private const string ReplicaManifest = "RS";
    private const string SegmentManifest = "CS";
    private const string SegmentComputedManifest = "SC";

    public override int Identifier => SerializerId;

    public override string Manifest(object o) => o switch
    {
        ModelSpec => ModelSpecManifest,
        RegisterWorker => RegisterManifest,
        WorkerAccepted => AcceptedManifest,
        WorkerRefused => RefusedManifest,
        ComputeGradients => ComputeManifest,
        GradientsComputed => ComputedManifest,
        GradientsFailed => FailedManifest,
        ParametersMissing => MissingManifest,
        ReplicaState => ReplicaManifest,
        ComputeSegment => SegmentManifest,
        SegmentComputed => SegmentComputedManifest,
        _ => throw new SerializationException($"{o.GetType()} is not a NameRnn message"),
    };

    public override byte[] ToBinary(object obj)
    {
        // A peer's path is a string built on each call: made once, for the size and for the bytes.
        var peerPaths = (obj as ComputeGradients)?.Peers?.Select(Serialization.SerializedActorPath).ToArray() ?? [];
        var w = new WireWriter(EstimateSize(obj, peerPaths));
        w.Byte(FormatVersion);
        switch (obj)
        {
            case ModelSpec m: WriteSpec(w, m); break;
            case RegisterWorker m:
                w.Int32(m.ProtocolVersion); w.String(m.WorkerId); w.String(m.ModelFormat); w.String(m.Secret); w.String(m.BlockEndpoint);
                break;
            case WorkerAccepted m: w.String(m.RunId); WriteSpec(w, m.Model); w.Floats(m.ClassWeights); w.Double(m.Dropout); w.Double(m.LabelSmoothing); break;
            case WorkerRefused m: w.String(m.Reason); break;
            case ComputeGradients m: WriteCompute(w, m, peerPaths); break;
            case GradientsComputed m: WriteComputed(w, m); break;
            case GradientsFailed m: w.String(m.RunId); w.Int64(m.Step); w.Int32(m.MicroBatch); w.String(m.Reason); break;
            case ParametersMissing m: w.String(m.RunId); w.Int64(m.Step); w.Int32(m.MicroBatch); w.Int64(m.ParametersVersion); break;
            case ReplicaState m:
                w.String(m.RunId); w.Int64(m.Version); w.Int32(m.Part); w.Int32(m.Parts); w.String(m.Optimizer); w.Int64(m.OptimizerSteps);
                w.Double(m.Momentum); w.Double(m.WeightDecay); w.Double(m.ClipNorm); w.Floats(m.Values); w.Int64(m.Generation);
                break;
            case ComputeSegment m:
                w.String(m.RunId); w.Int64(m.Generation); w.Int64(m.StateAt);
                w.Strings(m.Peers.Select(Serialization.SerializedActorPath).ToArray()); w.Strings(m.PeerEndpoints);
                w.Int32(m.Units.Length);
                foreach (var unit in m.Units) WriteCompute(w, unit with { Peers = null, PeerEndpoints = null }, []);
                break;
            case SegmentComputed m:
                w.String(m.RunId); w.Int64(m.Generation); w.Int32(m.Units.Length);
                foreach (var unit in m.Units) WriteComputed(w, unit);
                break;
            default: throw new SerializationException($"{obj.GetType()} is not a NameRnn message");
        }
        return w.ToArray();
    }

    public override object FromBinary(byte[] bytes, string manifest)
    {
        try
        {
            var r = new WireReader(bytes);
            var version = r.Byte();
            if (version != FormatVersion)
                throw new FormatException($"wire format version {version}, this node reads version {FormatVersion}");
            object message = manifest switch
            {
                ModelSpecManifest => ReadSpec(ref r),
                RegisterManifest => new RegisterWorker(r.Int32(), r.String(), r.String(), r.String(), r.String()),
                AcceptedManifest => new WorkerAccepted(r.String(), ReadSpec(ref r), r.Floats(), r.Double(), r.Double()),
                RefusedManifest => new WorkerRefused(r.String()),
                ComputeManifest => ReadCompute(ref r, system),
                ComputedManifest => ReadComputed(ref r),
                FailedManifest => new GradientsFailed(r.String(), r.Int64(), r.Int32(), r.String()),
                MissingManifest => new ParametersMissing(r.String(), r.Int64(), r.Int32(), r.Int64()),
                ReplicaManifest => new ReplicaState(r.String(), r.Int64(), r.Int32(), r.Int32(), r.String(), r.Int64(), r.Double(), r.Double(), r.Double(), r.RequiredFloats(), r.Int64()),
                SegmentManifest => ReadSegment(ref r, system),
                SegmentComputedManifest => ReadSegmentComputed(ref r),
                _ => throw new FormatException($"unknown manifest '{manifest}'"),
            };
            r.End();
            return message;
        }
        catch (FormatException e)
        {
            throw new SerializationException($"malformed NameRnn message ({manifest}, {bytes.Length} bytes): {e.Message}", e);
        }
    }

    /// <summary>A <see cref="GradientsComputed"/> from its bytes (a block sum that came over a worker's direct link); throws <see cref="SerializationException"/> on anything malformed.</summary>
    public GradientsComputed BlockFromBinary(byte[] bytes) => (GradientsComputed)FromBinary(bytes, ComputedManifest);

    private static void WriteCompute(WireWriter w, ComputeGradients m, string[] peerPaths)
    {
        w.String(m.RunId); w.Int64(m.Step); w.Int32(m.MicroBatch); w.Int64(m.ParametersVersion); w.Floats(m.Parameters);
        w.Int32(m.MicroBatches.Length);
        foreach (var part in m.MicroBatches)
        {
            w.Strings(part.Names); w.Int32s(part.Labels); w.Int64(part.NoiseSeed);
        }
        w.Int32(m.StepMicroBatches); w.Double(m.LearningRate);
        w.Strings(peerPaths);
        w.Strings(m.PeerEndpoints ?? []);
        w.Int64(m.Generation);
    }

    private static void WriteComputed(WireWriter w, GradientsComputed m)
    {
        w.String(m.RunId); w.Int64(m.Step); w.Int32(m.MicroBatch); w.Int32(m.MicroBatches); w.Double(m.LossSum); w.Int32(m.Count); w.Floats(m.Gradients); w.Int32(m.Correct);
        w.Int32(m.StepMicroBatches); w.Double(m.LearningRate); w.Int64(m.Generation);
    }

    private static GradientsComputed ReadComputed(ref WireReader r) =>
        new(r.String(), r.Int64(), r.Int32(), r.Int32(), r.Double(), r.Int32(), r.RequiredFloats(), r.Int32(), r.Int32(), r.Double(), r.Int64());

    /// <summary>The fewest bytes a unit of work takes (run id, numbers, empty arrays, generation).</summary>
    private const int ComputeMinimumBytes = 4 + 8 + 4 + 8 + 4 + 4 + 4 + 8 + 4 + 4 + 8;

    /// <summary>The fewest bytes a gradient sum takes.</summary>
    private const int ComputedMinimumBytes = 4 + 8 + 4 + 4 + 8 + 4 + 4 + 4 + 4 + 8 + 8;

    private static ComputeSegment ReadSegment(ref WireReader r, ExtendedActorSystem system)
    {
        var (runId, generation, stateAt) = (r.String(), r.Int64(), r.Int64());
        var peers = r.Strings().Select(path => ResolvePeer(system, path)).ToArray();
        var endpoints = r.Strings();
        if (endpoints.Length != peers.Length) throw new FormatException($"{endpoints.Length} peer endpoints for {peers.Length} peers");
        var units = new ComputeGradients[r.Count(ComputeMinimumBytes)];
        for (var i = 0; i < units.Length; i++) units[i] = ReadCompute(ref r, system) with { Peers = peers, PeerEndpoints = endpoints };
        return new ComputeSegment(runId, generation, units, stateAt, peers, endpoints);
    }

    private static SegmentComputed ReadSegmentComputed(ref WireReader r)
    {
        var (runId, generation) = (r.String(), r.Int64());
        var units = new GradientsComputed[r.Count(ComputedMinimumBytes)];
        for (var i = 0; i < units.Length; i++) units[i] = ReadComputed(ref r);
        return new SegmentComputed(runId, generation, units);
    }

    private static ComputeGradients ReadCompute(ref WireReader r, ExtendedActorSystem system)
    {
        var (runId, step, microBatch, version, parameters) = (r.String(), r.Int64(), r.Int32(), r.Int64(), r.Floats());
        var parts = new MicroBatchWork[r.Count(MicroBatchWorkMinimumBytes)];
        for (var i = 0; i < parts.Length; i++)
        {
            parts[i] = new MicroBatchWork(r.Strings(), r.Int32s(), r.Int64());
            if (parts[i].Names.Length != parts[i].Labels.Length)
                throw new FormatException($"micro-batch {i} of the unit has {parts[i].Names.Length} names but {parts[i].Labels.Length} labels");
        }
        var (stepMicroBatches, learningRate) = (r.Int32(), r.Double());
        var peers = r.Strings().Select(path => ResolvePeer(system, path)).ToArray();
        var endpoints = r.Strings();
        if (endpoints.Length != 0 && endpoints.Length != peers.Length)
            throw new FormatException($"{endpoints.Length} peer endpoints for {peers.Length} peers");
        return new ComputeGradients(runId, step, microBatch, version, parameters, parts, stepMicroBatches, learningRate, peers, endpoints.Length == 0 ? null : endpoints, r.Int64());
    }

    private static IActorRef ResolvePeer(ExtendedActorSystem system, string path)
    {
        if (!ActorPath.TryParse(path, out _)) throw new FormatException($"a peer's actor path '{path}' does not parse");
        return system.Provider.ResolveActorRef(path);
    }

    /// <summary>The fewest bytes one <see cref="MicroBatchWork"/> takes: two empty arrays and the seed.</summary>
    private const int MicroBatchWorkMinimumBytes = 4 + 4 + 8;

    private static void WriteSpec(WireWriter w, ModelSpec m)
    {
        w.String(m.Cell); w.Int32(m.Hidden); w.Int32(m.Classes); w.Int32(m.Inputs); w.Int32(m.Embedding); w.Byte(m.Bidirectional ? (byte)1 : (byte)0); w.String(m.Pooling); w.Int32(m.Layers); w.String(m.Hash);
    }

    private static ModelSpec ReadSpec(ref WireReader r) => new(r.String(), r.Int32(), r.Int32(), r.Int32(), r.Int32(), r.Byte() switch { 0 => false, 1 => true, var b => throw new FormatException($"a flag of {b}") }, r.String(), r.Int32(), r.String());

    /// <summary>The bytes a unit's micro-batches take on the wire (names, labels, seeds, with their counts).</summary>
    public static int WorkSize(MicroBatchWork[] parts) => 4 + parts.Sum(p => 4 + p.Names.Sum(WireWriter.SizeOf) + 4 + p.Labels.Length * 4 + 8);

    /// <summary>About what a unit of a segment takes besides its micro-batches (run id, numbers, generation; its peers travel once a segment).</summary>
    public const int UnitOverhead = 96;

    /// <summary>The exact size of the two messages that carry floats (so that no copy is made of them), an estimate of the others.</summary>
    private static int EstimateSize(object obj, string[] peerPaths) => obj switch
    {
        ComputeGradients m => 1 + WireWriter.SizeOf(m.RunId) + 8 + 4 + 8 + WireWriter.SizeOf(m.Parameters)
            + WorkSize(m.MicroBatches) + 4 + 8 + 4 + peerPaths.Sum(WireWriter.SizeOf)
            + 4 + (m.PeerEndpoints ?? []).Sum(WireWriter.SizeOf) + 8,
        GradientsComputed m => 1 + WireWriter.SizeOf(m.RunId) + 8 + 4 + 4 + 8 + 4 + WireWriter.SizeOf(m.Gradients) + 4 + 4 + 8 + 8,
        ReplicaState m => 128 + WireWriter.SizeOf(m.RunId) + WireWriter.SizeOf(m.Optimizer) + WireWriter.SizeOf(m.Values),
        WorkerAccepted m => 256 + (m.ClassWeights?.Length ?? 0) * 4,
        ComputeSegment m => 64 + m.Units.Sum(u => UnitOverhead + WorkSize(u.MicroBatches)),
        SegmentComputed m => 64 + m.Units.Length * 96,
        _ => 128,
    };
}
