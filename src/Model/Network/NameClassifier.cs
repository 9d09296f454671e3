using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace NameRnn.Model.Network;

/// <summary>
/// The character-level classifier: an Elman RNN (the seed's default), GRU or LSTM read over each
/// name, and a linear layer on the state after the last character. The input projection of a
/// one-hot letter is a column lookup in the input matrix, which gives the same numbers as the
/// one-hot product without computing it. Returns logits in packed (sorted) order.
/// </summary>
public sealed class NameClassifier : nn.Module<PackedNames, Tensor>
{
    /// <summary>
    /// The alpha of every tensor addition. TorchSharp's <c>a + b</c> makes a temporary Scalar for it,
    /// which the garbage collector may finalize on another thread while the native call still reads
    /// it (seen here as a crash in c10::Scalar::toDouble with several workers in one process); this
    /// one lives as long as the process.
    /// </summary>
    private static readonly Scalar One = 1.ToScalar();
    private static readonly Scalar MinusOne = (-1).ToScalar();

    private readonly ModelConfig _config;
    private readonly Parameter[] _weights;
    private readonly Parameter? _embedding;
    private readonly int _first;

    private static Tensor Add(Tensor a, Tensor b) => a.add(b, One);
    private static Tensor Drop(Tensor x, Dropout? dropout) => dropout is null ? x : dropout.Apply(x);
    private static Tensor Sub(Tensor a, Tensor b) => a.add(b, MinusOne);

    public NameClassifier(ModelConfig config, ScalarType dtype = ScalarType.Float32) : base(nameof(NameClassifier))
    {
        _config = config;
        _weights = config.ParameterShapes()
            .Select(p => new Parameter(torch.zeros(p.Shape, dtype: dtype)))
            .ToArray();
        foreach (var ((name, _), parameter) in config.ParameterShapes().Zip(_weights))
            register_parameter(name, parameter);
        _embedding = config.Embedding > 0 ? _weights[0] : null;
        _first = config.Embedding > 0 ? 1 : 0;
    }

    /// <summary>The k-th weight of the cell reading forwards (direction 0) or backwards (1), after the embedding when there is one.</summary>
    private Parameter W(int direction, int k) => _weights[_first + direction * (_config.Cell == Cells.Rnn ? 3 : 4) + k];

    /// <summary>
    /// The input projection of every packed letter: a column of the input matrix (the one-hot
    /// product without computing it), or, with an embedding, the letter's embedding times the input
    /// matrix. Dropout falls on the embedding, or on the projection when there is none.
    /// </summary>
    private Tensor Project(Tensor inputMatrix, Tensor tokens, Dropout? dropout)
    {
        if (_embedding is null) return Drop(inputMatrix.t().index_select(0, tokens), dropout);
        var embedded = Drop(_embedding.t().index_select(0, tokens), dropout);
        return embedded.mm(inputMatrix.t());
    }

    public ModelConfig Config => _config;

    /// <summary>The parameters in the module's parameter order (the order of the flat arrays).</summary>
    public IReadOnlyList<Parameter> OrderedParameters => _weights;

    public override Tensor forward(PackedNames batch) => Forward(batch, null);

    /// <summary>The logits, with dropout on the input projections and the last state when <paramref name="dropout"/> is given (training).</summary>
    public Tensor Forward(PackedNames batch, Dropout? dropout)
    {
        var last = Read(batch, torch.tensor(batch.Tokens, dtype: ScalarType.Int64), 0, dropout);
        if (_config.Bidirectional)
            last = torch.cat([last, Read(batch, torch.tensor(batch.ReversedTokens, dtype: ScalarType.Int64), 1, dropout)], 1);
        if (dropout is not null) last = dropout.Apply(last);
        return torch.addmm(_weights[^1], last, _weights[^2].t(), 1, 1);
    }

    /// <summary>The state of the cell of <paramref name="direction"/> after the last of <paramref name="tokens"/> of every name.</summary>
    private Tensor Read(PackedNames batch, Tensor tokens, int direction, Dropout? dropout) => _config.Cell switch
    {
        Cells.Rnn => Elman(batch, tokens, direction, dropout),
        Cells.Gru => Gru(batch, tokens, direction, dropout),
        Cells.Lstm => Lstm(batch, tokens, direction, dropout),
        _ => throw new InvalidOperationException($"unknown cell '{_config.Cell}'"),
    };

    /// <summary>s_t = tanh(U x_t + W s_{t-1} + b), s_0 = 0.</summary>
    private Tensor Elman(PackedNames batch, Tensor tokens, int direction, Dropout? dropout)
    {
        var (u, w, b) = (W(direction, 0), W(direction, 1), W(direction, 2));
        var inputs = Add(Project(u, tokens, dropout), b);
        var wt = w.t();
        return Unroll(batch, inputs, (x, state, n) =>
        {
            var h = state is null ? torch.tanh(x) : torch.tanh(torch.addmm(x, state[0], wt, 1, 1));
            return [h];
        });
    }

    /// <summary>PyTorch's GRU: r, z gates; n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)); h' = (1 − z) ⊙ n + z ⊙ h.</summary>
    private Tensor Gru(PackedNames batch, Tensor tokens, int direction, Dropout? dropout)
    {
        var (wih, whh, bih, bhh) = (W(direction, 0), W(direction, 1), W(direction, 2), W(direction, 3));
        var inputs = Add(Project(wih, tokens, dropout), bih);
        var whht = whh.t();
        return Unroll(batch, inputs, (x, state, n) =>
        {
            var xs = x.chunk(3, 1);
            if (state is null)
            {
                var hs0 = bhh.chunk(3, 0);
                var r0 = torch.sigmoid(Add(xs[0], hs0[0]));
                var z0 = torch.sigmoid(Add(xs[1], hs0[1]));
                var n0 = torch.tanh(Add(xs[2], r0 * hs0[2]));
                return [Sub(n0, z0 * n0)];
            }
            var h = state[0];
            var hs = torch.addmm(bhh, h, whht, 1, 1).chunk(3, 1);
            var r = torch.sigmoid(Add(xs[0], hs[0]));
            var z = torch.sigmoid(Add(xs[1], hs[1]));
            var cand = torch.tanh(Add(xs[2], r * hs[2]));
            return [Add(cand, z * Sub(h, cand))];
        });
    }

    /// <summary>PyTorch's LSTM: i, f, g, o gates; c' = f ⊙ c + i ⊙ g; h' = o ⊙ tanh(c').</summary>
    private Tensor Lstm(PackedNames batch, Tensor tokens, int direction, Dropout? dropout)
    {
        var (wih, whh, bih, bhh) = (W(direction, 0), W(direction, 1), W(direction, 2), W(direction, 3));
        var inputs = Add(Add(Project(wih, tokens, dropout), bih), bhh);
        var whht = whh.t();
        return Unroll(batch, inputs, (x, state, n) =>
        {
            var gates = state is null ? x : torch.addmm(x, state[0], whht, 1, 1);
            var g = gates.chunk(4, 1);
            var i = torch.sigmoid(g[0]);
            var f = torch.sigmoid(g[1]);
            var cell = torch.tanh(g[2]);
            var o = torch.sigmoid(g[3]);
            var c = state is null ? i * cell : Add(f * state[1], i * cell);
            return [o * torch.tanh(c), c];
        });
    }

    /// <summary>
    /// Runs a cell over the packed batch. <paramref name="step"/> gets the input rows of step t, the
    /// previous state cut to the names still running (null at t = 0) and their number; element 0 of
    /// the state is the hidden state. Names that end are collected in sorted order. The inputs are
    /// cut into steps, and a state into running and finished rows, by one split each: a narrow per
    /// use would make its backward pass add a zero-padded copy of the whole tensor per step.
    /// </summary>
    private static Tensor Unroll(PackedNames batch, Tensor inputs, Func<Tensor, Tensor[]?, int, Tensor[]> step)
    {
        var sizes = batch.BatchSizes;
        var perStep = inputs.split(sizes.Select(n => (long)n).ToArray(), 0);
        var finished = new List<Tensor>();
        Tensor[]? state = null;
        for (var t = 0; t < sizes.Length; t++)
        {
            var n = sizes[t];
            if (state is not null && n < sizes[t - 1])
            {
                var cut = new long[] { n, sizes[t - 1] - n };
                var hidden = state[0].split(cut, 0);
                finished.Add(hidden[1]);
                state = [hidden[0], .. state.Skip(1).Select(s => s.split(cut, 0)[0])];
            }
            state = step(perStep[t], state, n);
        }
        finished.Add(state![0]);
        finished.Reverse();
        return finished.Count == 1 ? finished[0] : torch.cat(finished, 0);
    }
}
