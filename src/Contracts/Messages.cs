namespace NameRnn.Contracts;

/// <summary>Marker for every message that crosses between coordinator and workers.</summary>
public interface INameRnnMessage;

/// <summary>The coordinator/worker protocol's version; a worker with another one is refused.</summary>
public static class Protocol
{
    public const int Version = 2;
}

/// <summary>What a worker needs to build the model it computes gradients for.</summary>
public sealed record ModelSpec(string Cell, int Hidden, int Classes, int Inputs, int Embedding, bool Bidirectional, string Pooling, int Layers, string Hash) : INameRnnMessage;

/// <summary>
/// A worker asks to take part; sent when it finds the coordinator (and again until answered).
/// <see cref="ModelFormat"/> identifies the model definition the worker's build implements (alphabet,
/// cells, parameter layout); <see cref="Secret"/> is the cluster secret it was given, if any.
/// </summary>
public sealed record RegisterWorker(int ProtocolVersion, string WorkerId, string ModelFormat, string Secret) : INameRnnMessage;

/// <summary>
/// The coordinator took the worker in for a run; the worker builds the model from <see cref="Model"/>
/// and trains it with the loss weights, dropout rate and label smoothing given.
/// </summary>
public sealed record WorkerAccepted(string RunId, ModelSpec Model, float[]? ClassWeights, double Dropout, double LabelSmoothing = 0) : INameRnnMessage;

/// <summary>The coordinator will not use this worker, and says why.</summary>
public sealed record WorkerRefused(string Reason) : INameRnnMessage;

/// <summary>
/// Compute the summed gradient of one micro-batch at parameter version <see cref="ParametersVersion"/>.
/// <see cref="Parameters"/> is null when the worker was already sent that version. Nobody changes the
/// arrays after sending. <see cref="NoiseSeed"/> seeds the micro-batch's dropout masks, so that any
/// worker computes the same bits.
/// </summary>
public sealed record ComputeGradients(
    string RunId, long Step, int MicroBatch, long ParametersVersion, float[]? Parameters, string[] Names, int[] Labels, long NoiseSeed) : INameRnnMessage;

/// <summary>The summed gradient and loss of one micro-batch, identified by (step, micro-batch), and how many of its names the forward pass got right.</summary>
public sealed record GradientsComputed(
    string RunId, long Step, int MicroBatch, double LossSum, int Count, float[] Gradients, int Correct = 0) : INameRnnMessage;

/// <summary>The worker could not compute the micro-batch (an exception, a non-finite gradient).</summary>
public sealed record GradientsFailed(string RunId, long Step, int MicroBatch, string Reason) : INameRnnMessage;

/// <summary>The worker lacks the parameter version the work asks for and needs them sent in full.</summary>
public sealed record ParametersMissing(string RunId, long Step, int MicroBatch, long ParametersVersion) : INameRnnMessage;
