using Akka.Actor;

namespace NameRnn.Contracts;

/// <summary>Marker for every message that crosses between coordinator and workers.</summary>
public interface INameRnnMessage;

/// <summary>The coordinator/worker protocol's version; a worker with another one is refused.</summary>
public static class Protocol
{
    public const int Version = 6;

    /// <summary>The most steps in one segment (<see cref="ComputeSegment"/>).</summary>
    public const int MaxSegmentSteps = 256;

    /// <summary>How many segments the coordinator has out at once: a worker keeps its peers' blocks up to that many segments ahead of its replica.</summary>
    public const int SegmentsOut = 2;
}

/// <summary>What a worker needs to build the model it computes gradients for.</summary>
public sealed record ModelSpec(string Cell, int Hidden, int Classes, int Inputs, int Embedding, bool Bidirectional, string Pooling, int Layers, string Hash) : INameRnnMessage;

/// <summary>
/// A worker asks to take part; sent when it finds the coordinator (and again until answered).
/// <see cref="ModelFormat"/> identifies the model definition the worker's build implements (alphabet,
/// cells, parameter layout); <see cref="Secret"/> is the cluster secret it was given, if any;
/// <see cref="BlockEndpoint"/> the host:port of its direct link for block sums (see <c>BlockLink</c>), "" for none.
/// </summary>
public sealed record RegisterWorker(int ProtocolVersion, string WorkerId, string ModelFormat, string Secret, string BlockEndpoint = "") : INameRnnMessage;

/// <summary>
/// The coordinator took the worker in for a run; the worker builds the model from <see cref="Model"/>
/// and trains it with the loss weights, dropout rate and label smoothing given.
/// </summary>
public sealed record WorkerAccepted(string RunId, ModelSpec Model, float[]? ClassWeights, double Dropout, double LabelSmoothing = 0) : INameRnnMessage;

/// <summary>The coordinator will not use this worker, and says why.</summary>
public sealed record WorkerRefused(string Reason) : INameRnnMessage;

/// <summary>The names and labels of one micro-batch, and the seed of its dropout masks (so that any worker computes the same bits).</summary>
public sealed record MicroBatchWork(string[] Names, int[] Labels, long NoiseSeed);

/// <summary>
/// Compute the gradient sums of the consecutive micro-batches <see cref="MicroBatch"/>, <see cref="MicroBatch"/> + 1, …
/// (one unit of work, <see cref="MicroBatches"/>) at parameter version <see cref="ParametersVersion"/>, and add
/// them in the fixed pairwise order of <c>GradientTree</c>. <see cref="Parameters"/> is null when the worker was
/// already sent that version, or will have it: a worker that keeps a replica (see <see cref="ReplicaState"/>)
/// takes each step itself from the step's block sums, and may be handed the next step's work before it has
/// them. It sends its answer to the coordinator and to each of <see cref="Peers"/>, the replicas of the step,
/// which need every block sum of the step (<see cref="StepMicroBatches"/> micro-batches in all) and its
/// <see cref="LearningRate"/> to take it: over the direct link at <see cref="PeerEndpoints"/>[i] (host:port,
/// "" for none) when it can, else through the remoting. <see cref="Generation"/> is that of the coordinator's
/// segments (see <see cref="ComputeSegment"/>), 0 outside them. Nobody changes the arrays after sending.
/// </summary>
public sealed record ComputeGradients(
    string RunId, long Step, int MicroBatch, long ParametersVersion, float[]? Parameters, MicroBatchWork[] MicroBatches,
    int StepMicroBatches = 0, double LearningRate = 0, IActorRef[]? Peers = null, string[]? PeerEndpoints = null, long Generation = 0) : INameRnnMessage;

/// <summary>
/// The summed gradient and loss of one unit of work: the <see cref="MicroBatches"/> micro-batches from
/// <see cref="MicroBatch"/> on of step <see cref="Step"/>, added in the fixed pairwise order; <see cref="Count"/>
/// names in all, <see cref="Correct"/> of them right in the forward pass. Sent to the coordinator and to the
/// step's replicas, with what they need to take the step: its number of micro-batches and its learning rate.
/// In a segment's report (<see cref="SegmentComputed"/>) <see cref="Gradients"/> is empty: the coordinator
/// takes only the loss and the counts.
/// </summary>
public sealed record GradientsComputed(
    string RunId, long Step, int MicroBatch, int MicroBatches, double LossSum, int Count, float[] Gradients, int Correct = 0,
    int StepMicroBatches = 0, double LearningRate = 0, long Generation = 0) : INameRnnMessage;

/// <summary>The worker could not compute the unit of work that starts at <see cref="MicroBatch"/> (an exception, a non-finite gradient).</summary>
public sealed record GradientsFailed(string RunId, long Step, int MicroBatch, string Reason) : INameRnnMessage;

/// <summary>The worker lacks the parameter version the work asks for and needs them sent in full.</summary>
public sealed record ParametersMissing(string RunId, long Step, int MicroBatch, long ParametersVersion) : INameRnnMessage;

/// <summary>
/// The run's state at parameter version <see cref="Version"/>, for a worker to keep a replica of it: part 0
/// is the parameters, parts 1 … <see cref="Parts"/> − 1 the optimizer's buffers (one message each, so that
/// none is larger than a parameter message), with what the optimizer needs to go on exactly as the
/// coordinator's does. The coordinator sends it to a worker, which drops what it held of an older
/// <see cref="Generation"/>; a worker sends it to the coordinator at the end of a segment (see <see cref="ComputeSegment"/>).
/// </summary>
public sealed record ReplicaState(
    string RunId, long Version, int Part, int Parts, string Optimizer, long OptimizerSteps, double Momentum, double WeightDecay, double ClipNorm,
    float[] Values, long Generation = 0) : INameRnnMessage;

/// <summary>
/// A segment: the worker's units of work for a run of consecutive steps (each a <see cref="ComputeGradients"/>
/// without parameters, for the replica the worker keeps, in step order), which it computes one after the other
/// as its replica takes the steps, sending each block sum to <see cref="Peers"/> (the replicas of every step of
/// the segment, over the direct links at <see cref="PeerEndpoints"/> when they have one) and, once all are done,
/// one <see cref="SegmentComputed"/> to the coordinator. So the coordinator is off the path of every step: it
/// hears from a worker once a segment. When <see cref="StateAt"/> is not −1 the worker also sends the
/// coordinator its replica's state (<see cref="ReplicaState"/>) once the replica is at that version. The units
/// carry no peers of their own on the wire: the segment's apply to all of them.
/// </summary>
public sealed record ComputeSegment(string RunId, long Generation, ComputeGradients[] Units, long StateAt, IActorRef[] Peers, string[] PeerEndpoints) : INameRnnMessage;

/// <summary>A worker's report on a segment: per unit its loss sum and counts, without the gradient (see <see cref="GradientsComputed"/>).</summary>
public sealed record SegmentComputed(string RunId, long Generation, GradientsComputed[] Units) : INameRnnMessage;
