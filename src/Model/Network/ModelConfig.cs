using System.Security.Cryptography;
using System.Text;
using NameRnn.Model.Data;

namespace NameRnn.Model.Network;

/// <summary>The recurrent cells NameRnn offers: the seed's Elman RNN, GRU and LSTM.</summary>
public static class Cells
{
    public const string Rnn = "rnn";
    public const string Gru = "gru";
    public const string Lstm = "lstm";
    public static readonly IReadOnlyList<string> All = [Rnn, Gru, Lstm];

    /// <summary>How many gate blocks of the hidden size the input and recurrent matrices hold.</summary>
    public static int Gates(string cell) => cell switch
    {
        Rnn => 1,
        Gru => 3,
        Lstm => 4,
        _ => throw new ArgumentException($"unknown cell '{cell}': expected one of {string.Join(", ", All)}", nameof(cell)),
    };
}

/// <summary>What defines a model's shape; saved with every model so that it loads without guessing.</summary>
/// <param name="Embedding">Size of a learned letter embedding before the cell; 0 = one-hot letters (the seed's model).</param>
public sealed record ModelConfig(string Cell, int Hidden, int Classes, int Inputs, int Embedding = 0)
{
    public static ModelConfig Create(string cell, int hidden, int classes, int embedding = 0) => new(cell, hidden, classes, Alphabet.Size, embedding);

    /// <summary>(name, shape) of every parameter, in the module's parameter order.</summary>
    public IReadOnlyList<(string Name, long[] Shape)> ParameterShapes()
    {
        var g = Cells.Gates(Cell) * Hidden;
        var input = Embedding > 0 ? Embedding : Inputs;
        List<(string, long[])> shapes = Cell == Cells.Rnn
            ? [("U", [Hidden, input]), ("W", [Hidden, Hidden]), ("b", [Hidden]), ("V", [Classes, Hidden]), ("c", [Classes])]
            : [("W_ih", [g, input]), ("W_hh", [g, Hidden]), ("b_ih", [g]), ("b_hh", [g]), ("V", [Classes, Hidden]), ("c", [Classes])];
        if (Embedding > 0) shapes.Insert(0, ("E", [Embedding, Inputs]));
        return shapes;
    }

    public int ParameterCount => ParameterShapes().Sum(p => (int)p.Shape.Aggregate(1L, (a, b) => a * b));

    /// <summary>
    /// Identifies the model definition this build implements (alphabet, cells and parameter layout);
    /// a worker whose build differs would compute other gradients and is refused.
    /// </summary>
    public static string Format { get; } = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(
        $"namernn-model-v1|{Alphabet.Letters}|{string.Join(",", Cells.All)}|E?|U,W,b,V,c|W_ih,W_hh,b_ih,b_hh,V,c")))[..16];

    /// <summary>A short hash of the configuration, so that peers can tell whether they build the same model.</summary>
    public string Hash()
    {
        var text = $"{Format}|{Cell}|{Hidden}|{Classes}|{Inputs}|{Embedding}";
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)))[..16];
    }
}
