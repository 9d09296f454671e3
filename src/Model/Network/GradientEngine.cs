using NameRnn.Model.Data;
using NameRnn.Model.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace NameRnn.Model.Network;

/// <summary>The gradient sum and loss sum of one micro-batch.</summary>
/// <param name="Correct">How many names of the micro-batch the forward pass (with dropout) classified right.</param>
public sealed record MicroBatchGradients(double LossSum, int Count, float[] Gradients, int Correct = 0);

/// <summary>
/// Computes the summed gradient of the (class-weighted) cross-entropy of a micro-batch for given
/// parameters. All TorchSharp work happens synchronously inside one dispose scope per call;
/// gradients leave as a plain array in the module's parameter order.
/// </summary>
public sealed class GradientEngine : IDisposable
{
    private readonly NameClassifier _module;
    private readonly Tensor? _classWeights;
    private readonly float[]? _classWeightValues;
    private readonly double _dropout;
    private readonly double _labelSmoothing;
    private long _loadedVersion = -1;

    /// <summary>
    /// Whether the seed's model (one Elman layer reading forwards, one-hot letters, the output layer on
    /// the last state) is differentiated by <see cref="ElmanGradients"/> instead of autograd.
    /// </summary>
    private readonly bool _byHand;

    /// <summary>
    /// The 1 (and alpha) of additions, alive as long as the process: TorchSharp makes a temporary Scalar
    /// for each one not given, and never disposes of it (see NameClassifier's One). The engine also asks
    /// a tensor's <c>size(d)</c>, not its <c>shape</c>, which leaves an object behind for the finalizer
    /// too: with both, a pass of the default model left about 2 such objects per letter step and a dozen
    /// more, each of which the next garbage collection had to queue and the finalizer thread to run.
    /// </summary>
    private static readonly Scalar One = 1.ToScalar();

    /// <param name="autograd">Differentiate every model with autograd, also the one <see cref="ElmanGradients"/> handles (tests compare the two).</param>
    public GradientEngine(ModelConfig config, float[]? classWeights, double dropout = 0, double labelSmoothing = 0, bool autograd = false)
    {
        _byHand = !autograd && config is { Cell: Cells.Rnn, Layers: 1, Bidirectional: false, Embedding: 0, Pooling: Poolings.Last };
        if (labelSmoothing is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(labelSmoothing), labelSmoothing, "label smoothing must be in [0, 1)");
        _dropout = dropout;
        _labelSmoothing = labelSmoothing;
        _module = new NameClassifier(config);
        _module.train();
        if (classWeights is not null)
        {
            if (classWeights.Length != config.Classes)
                throw new ArgumentException($"{classWeights.Length} class weights for {config.Classes} classes", nameof(classWeights));
            _classWeights = torch.tensor(classWeights).DetachFromDisposeScope();
            _classWeightValues = classWeights.ToArray();
        }
    }

    public ModelConfig Config => _module.Config;

    /// <summary>The parameter version loaded last; -1 before any.</summary>
    public long LoadedVersion => _loadedVersion;

    public void LoadParameters(long version, float[] parameters)
    {
        ParameterIo.Load(_module, parameters);
        _loadedVersion = version;
    }

    /// <summary>The gradient sum of one micro-batch; <paramref name="noiseSeed"/> seeds its dropout masks.</summary>
    public MicroBatchGradients Compute(IReadOnlyList<string> names, IReadOnlyList<int> labels, long noiseSeed = 0) =>
        ComputeMany([new MicroBatch(0, names.ToArray(), labels.ToArray(), noiseSeed)])[0];

    /// <summary>
    /// The gradient sums of several micro-batches (a worker's unit of work), each the same bits as
    /// <see cref="Compute"/> on that micro-batch alone. The seed's model computes them in one pass
    /// over all their names (see <see cref="ElmanGradients"/>); other models one after the other.
    /// </summary>
    public IReadOnlyList<MicroBatchGradients> ComputeMany(IReadOnlyList<MicroBatch> microBatches)
    {
        if (_loadedVersion < 0) throw new InvalidOperationException("no parameters loaded");
        if (microBatches.Count == 0) throw new ArgumentException("no micro-batch to compute", nameof(microBatches));
        var classes = _module.Config.Classes;
        foreach (var mb in microBatches)
        {
            if (mb.Names.Length != mb.Labels.Length) throw new ArgumentException("names and labels differ in length");
            foreach (var label in mb.Labels)
                if (label < 0 || label >= classes) throw new ArgumentException($"label {label} is not one of the model's {classes} classes (0 to {classes - 1})");
        }
        if (!_byHand) return microBatches.Select(WithAutograd).ToList();
        using var scope = torch.NewDisposeScope();
        return ElmanGradients(microBatches);
    }

    private MicroBatchGradients WithAutograd(MicroBatch mb)
    {
        using var scope = torch.NewDisposeScope();
        var packed = PackedNames.Pack(mb.Names.Select(Alphabet.Encode).ToList());
        var sortedLabels = SortedLabels(packed, mb.Labels);
        var logits = _module.Forward(packed, _dropout > 0 ? new Dropout(_dropout, mb.NoiseSeed) : null);
        var loss = Loss(logits, sortedLabels);
        _module.zero_grad();
        loss.backward();
        var correct = (int)logits.argmax(1).eq(sortedLabels).sum().data<long>()[0];
        return new MicroBatchGradients(loss.data<float>()[0], mb.Names.Length, ParameterIo.FlattenGradients(_module), correct);
    }

    private static Tensor SortedLabels(PackedNames packed, IReadOnlyList<int> labels) =>
        torch.tensor(packed.Order.Select(i => (long)labels[i]).ToArray(), dtype: ScalarType.Int64);

    private Tensor Loss(Tensor logits, Tensor sortedLabels) => _labelSmoothing > 0
        ? SmoothedLoss(logits, sortedLabels)
        : nn.functional.cross_entropy(logits, sortedLabels, _classWeights, reduction: nn.Reduction.Sum);

    /// <summary>
    /// The seed's model, differentiated by hand: s_t = tanh(x_t + W s_{t−1}), x_t = U[:, letter]
    /// (dropped out) + b, z = V f + c with f the last state (dropped out), and the class-weighted,
    /// label-smoothed cross-entropy of z. The forward pass is the module's, computed in place in one
    /// buffer of all packed states. The loss's gradient is ∂L/∂z = w_y (softmax(z) − q) with q the
    /// smoothed target ((1 − ε) on the label, ε spread evenly). Back through time,
    /// g_t = ∂L/∂s_t ⊙ (1 − s_t²) and ∂L/∂s_{t−1} = g_t W for the names still running at t (a name that
    /// ends at t − 1 starts from the output layer's gradient); then ∂L/∂W = Σ_t g_tᵀ s_{t−1} in one
    /// product over all steps, ∂L/∂b = Σ g, and ∂L/∂U adds each g row (times its dropout mask) to its
    /// letter's column. Autograd records about ten operations per letter step and adds W's gradient
    /// step by step; this does two to four, without a graph.
    /// <para>
    /// Several micro-batches go through together, packed as one batch: every operation on names
    /// computes each name's row by itself (element-wise, row by row, or a matrix product of at least
    /// <see cref="RowWise.MinRows"/> rows), so a name's values are the same bits whichever names share
    /// its pass. What adds over names (the loss and the gradients of U, W, b, V and c) is computed per
    /// micro-batch, from its rows gathered in its own packed order, as if it were alone. Each letter
    /// step and each operation costs libtorch a fixed time, which a small micro-batch pays per name.
    /// </para>
    /// </summary>
    private List<MicroBatchGradients> ElmanGradients(IReadOnlyList<MicroBatch> microBatches)
    {
        var parameters = _module.OrderedParameters;
        var (u, w, b, v, c) = (parameters[0], parameters[1], parameters[2], parameters[3], parameters[4]);
        var (hidden, classes) = (w.size(0), v.size(0));
        var encoded = microBatches.Select(mb => mb.Names.Select(Alphabet.Encode).ToList()).ToList();
        var own = encoded.Select(PackedNames.Pack).ToList();
        var single = own.Count == 1;
        var merged = single ? own[0] : PackedNames.Pack(encoded.SelectMany(e => e).ToList());
        var layouts = MergedLayout.Of(own, merged);
        var sizes = merged.BatchSizes;
        var stepRows = sizes.Select(n => (long)n).ToArray();
        var allLabels = microBatches.SelectMany(mb => mb.Labels).ToArray();
        var labels = merged.Order.Select(i => allLabels[i]).ToArray();
        var dropouts = microBatches.Select(mb => _dropout > 0 ? new Dropout(_dropout, mb.NoiseSeed) : null).ToArray();
        var inputMasks = new Tensor?[own.Count];
        using var noGrad = torch.no_grad();

        // Forward: the module's operations (Project, Elman), in place. The buffer of states has
        // RowWise.MinRows − 1 rows more than the letters (never read as states), so that a step's product
        // of fewer rows can read its rows padded from the buffer itself (see RowWise).
        var rows = merged.Tokens.Length;
        var tokens = new long[rows + RowWise.MinRows - 1];
        merged.Tokens.CopyTo(tokens, 0);
        var buffer = u.t().index_select(0, torch.tensor(tokens, dtype: ScalarType.Int64));
        var projected = buffer.narrow(0, 0, rows);
        Tensor? featureMask = null;
        if (_dropout > 0)
        {
            // Each micro-batch draws its masks in its own order, the letters' first, as the module does.
            for (var m = 0; m < own.Count; m++) inputMasks[m] = dropouts[m]!.Mask([own[m].Tokens.Length, hidden], projected.dtype);
            projected.mul_(Merge(inputMasks!, layouts.Select(l => l.RowIndex).ToArray(), [rows, hidden]));
            var featureMasks = own.Select((p, m) => dropouts[m]!.Mask([p.Count, hidden], projected.dtype)).ToArray();
            featureMask = Merge(featureMasks, layouts.Select(l => l.NameRows).ToArray(), [merged.Count, hidden]);
        }
        var paddedStates = buffer.add_(b, One);
        var states = paddedStates.narrow(0, 0, rows);
        var perStep = states.split(stepRows, 0);
        var wt = w.t();
        var products = new RowWise();
        perStep[0].tanh_();
        // Step t reads the first sizes[t] states of step t − 1.
        for (var t = 1; t < sizes.Length; t++) products.AddProduct(perStep[t], paddedStates, merged.Offsets[t - 1], wt, 1).tanh_();
        var last = states.index_select(0, torch.tensor(merged.LastRows(), dtype: ScalarType.Int64));
        var features = featureMask is null ? last : last.mul(featureMask);
        var logits = products.AddProduct(c.expand(merged.Count, classes).clone(), RowWise.AtLeastMinRows(features), 0, v.t(), 1);
        var logP = logits.log_softmax(1);

        // The loss's gradient: w_y (softmax(z) − q), row by row.
        var labelTensor = torch.tensor(labels.Select(l => (long)l).ToArray(), dtype: ScalarType.Int64);
        var target = torch.tensor(SmoothedTargets(labels, (int)classes), merged.Count, classes);
        var gradLogits = logP.exp().sub_(target);
        if (_classWeights is not null) gradLogits.mul_(_classWeights.index_select(0, labelTensor).unsqueeze(1));
        var upstream = products.AddProduct(torch.empty(merged.Count, hidden, dtype: states.dtype), RowWise.AtLeastMinRows(gradLogits), 0, v, 0);
        if (featureMask is not null) upstream.mul_(featureMask);

        // Back through time: the rows of 'upstream' are ∂L/∂s of the names still running.
        var paddedG = paddedStates.mul(paddedStates).neg_().add_(One, One);
        var g = paddedG.narrow(0, 0, rows);
        var gradientPerStep = g.split(stepRows, 0);
        for (var t = sizes.Length - 1; t >= 0; t--)
        {
            var running = sizes[t] == merged.Count ? upstream : upstream.narrow(0, 0, sizes[t]);
            gradientPerStep[t].mul_(running);
            if (t > 0) products.AddProduct(running, paddedG, merged.Offsets[t], w, 0);
        }

        // What adds over names, per micro-batch: its rows in its own packed order, from here on as if it were alone.
        var logPValues = ParameterIo.ToFloats(logP);
        var results = new List<MicroBatchGradients>(own.Count);
        for (var m = 0; m < own.Count; m++)
        {
            var (packed, layout) = (own[m], layouts[m]);
            var gm = single ? g : g.index_select(0, layout.Rows);
            // One-letter names only: one step, no recurrence, no gradient for W.
            var gradW = packed.BatchSizes.Length == 1 ? torch.zeros_like(w)
                : gm.narrow(0, packed.BatchSizes[0], packed.Tokens.Length - packed.BatchSizes[0]).t()
                    .mm(states.index_select(0, layout.RowsOf(packed.PreviousRows())));
            var gradB = gm.sum([0L]);
            var gradProjected = inputMasks[m] is { } mask ? gm.mul(mask) : gm;
            var gradU = torch.zeros(u.size(1), u.size(0), dtype: u.dtype)
                .index_add_(0, torch.tensor(packed.Tokens, dtype: ScalarType.Int64), gradProjected, One).t();
            var gradLogitsM = single ? gradLogits : gradLogits.index_select(0, layout.Names);
            var gradV = gradLogitsM.t().mm(single ? features : features.index_select(0, layout.Names));
            var gradC = gradLogitsM.sum([0L]);
            var gradients = ParameterIo.ToFloats(torch.cat([gradU.reshape(-1), gradW.reshape(-1), gradB, gradV.reshape(-1), gradC], 0));
            var (loss, correct) = LossAndHits(logPValues, (int)classes, layout.NameRows, labels);
            results.Add(new MicroBatchGradients(loss, packed.Count, gradients, correct));
        }
        return results;
    }

    /// <summary>q, row by row: ε / classes on every class, plus 1 − ε on the label.</summary>
    private float[] SmoothedTargets(int[] labels, int classes)
    {
        var (spread, keep) = ((float)(_labelSmoothing / classes), (float)(1 - _labelSmoothing));
        var target = new float[labels.Length * classes];
        Array.Fill(target, spread);
        for (var i = 0; i < labels.Length; i++) target[i * classes + labels[i]] = keep + spread;
        return target;
    }

    /// <summary>
    /// Each micro-batch's rows (a new float32 tensor, in its own order) copied to their merged rows
    /// <paramref name="rows"/>[m], row by row in C# (libtorch's index_copy took about 3 % of local mode's
    /// time for it); a single micro-batch's tensor as it is.
    /// </summary>
    private static Tensor Merge(Tensor[] parts, long[][] rows, long[] shape)
    {
        if (parts.Length == 1) return parts[0];
        var merged = torch.empty(shape, dtype: ScalarType.Float32);
        var width = (int)shape[1];
        var to = ParameterIo.Floats(merged);
        for (var m = 0; m < parts.Length; m++)
        {
            var from = ParameterIo.Floats(parts[m]);
            var at = rows[m];
            for (var k = 0; k < at.Length; k++) from.Slice(k * width, width).CopyTo(to.Slice((int)at[k] * width, width));
        }
        return merged;
    }

    /// <summary>
    /// The loss sum of a micro-batch, Σ_i w_{y_i} [(1 − ε)(−log p_{i,y_i}) + ε · mean_c(−log p_{i,c})]
    /// in double precision over its names in its own order, and how many of them the largest
    /// probability classifies right.
    /// </summary>
    private (double Loss, int Correct) LossAndHits(float[] logP, int classes, long[] names, int[] labels)
    {
        var (loss, correct) = (0.0, 0);
        foreach (var r in names)
        {
            var row = logP.AsSpan((int)r * classes, classes);
            var y = labels[(int)r];
            var (mean, best) = (0.0, 0);
            for (var k = 0; k < classes; k++)
            {
                mean += row[k];
                if (row[k] > row[best]) best = k;
            }
            var perName = (1 - _labelSmoothing) * -row[y] + _labelSmoothing * -(mean / classes);
            loss += (_classWeightValues?[y] ?? 1.0) * perName;
            if (best == y) correct++;
        }
        return (loss, correct);
    }

    /// <summary>
    /// Σ_i w_{y_i} [(1 − ε)(−log p_{i,y_i}) + ε · mean_c(−log p_{i,c})]: the cross-entropy against a
    /// target that puts 1 − ε on the label and ε evenly on all classes, weighted by the label's weight.
    /// </summary>
    private Tensor SmoothedLoss(Tensor logits, Tensor labels)
    {
        var logP = nn.functional.log_softmax(logits, 1);
        var nll = logP.gather(1, labels.unsqueeze(1)).squeeze(1).neg();
        var uniform = logP.mean([1]).neg();
        using var keep = (1 - _labelSmoothing).ToScalar();
        using var spread = _labelSmoothing.ToScalar();
        var perName = nll.mul(keep).add(uniform, spread);
        if (_classWeights is not null) perName = perName.mul(_classWeights.index_select(0, labels));
        return perName.sum();
    }

    public void Dispose()
    {
        _module.Dispose();
        _classWeights?.Dispose();
    }
}

/// <summary>Moves parameters and gradients between a module and flat float32 arrays.</summary>
public static class ParameterIo
{
    /// <summary>
    /// Copies <paramref name="flat"/> into the module's parameters, straight into their memory (one copy;
    /// through a tensor of the whole array and a copy_ per parameter it was two, about 0.06 ms a step
    /// of the default model on the critical path of every worker).
    /// </summary>
    public static void Load(NameClassifier module, float[] flat)
    {
        if (flat.Length != module.Config.ParameterCount)
            throw new ArgumentException($"{flat.Length} parameter values for a model of {module.Config.ParameterCount}");
        var offset = 0;
        foreach (var p in module.OrderedParameters)
        {
            var n = (int)p.numel();
            flat.AsSpan(offset, n).CopyTo(Floats(p));
            offset += n;
        }
    }

    public static float[] FlattenGradients(NameClassifier module)
    {
        using var scope = torch.NewDisposeScope();
        return Concat(module.OrderedParameters.Select(p => p.grad ?? torch.zeros_like(p)));
    }

    private static float[] Concat(IEnumerable<Tensor> tensors) =>
        ToFloats(torch.cat(tensors.Select(t => t.reshape(-1)).ToArray(), 0).to_type(ScalarType.Float32));

    /// <summary>
    /// The values of a float32 tensor in row-major order, copied in one block. (TorchSharp's
    /// <c>data&lt;float&gt;().CopyTo</c> copies element by element and asks the native library for the
    /// element count at each one: about a tenth of local mode's CPU time at global batch 64.)
    /// </summary>
    public static float[] ToFloats(Tensor tensor) => Floats(tensor.contiguous()).ToArray();

    /// <summary>The memory of a contiguous float32 tensor as floats in row-major order, to read or write in place.</summary>
    public static Span<float> Floats(Tensor tensor)
    {
        if (tensor.dtype != ScalarType.Float32) throw new ArgumentException($"a tensor of {tensor.dtype}, not float32", nameof(tensor));
        if (!tensor.is_contiguous()) throw new ArgumentException("a tensor that is not contiguous", nameof(tensor));
        return System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(tensor.bytes);
    }
}
