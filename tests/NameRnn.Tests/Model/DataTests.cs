using System.Text;
using NameRnn.Model.Data;

namespace NameRnn.Tests.Model;

public class DataTests
{
    [Theory]
    [InlineData("Ślusàrski", "Slusarski")]
    [InlineData("Nguyễn", "Nguyen")]
    [InlineData("O'Néal", "O'Neal")]
    [InlineData("Müller-Lüdenscheidt", "MullerLudenscheidt")]
    [InlineData("张伟", "")]
    public void Normalisation_decomposes_drops_marks_and_foreign_characters(string raw, string expected) =>
        Assert.Equal(expected, Alphabet.Normalise(raw));

    [Fact]
    public void The_alphabet_has_57_letters_in_the_design_order()
    {
        Assert.Equal(57, Alphabet.Size);
        Assert.Equal(new[] { 0, 25, 26, 51, 52, 56 }, Alphabet.Encode("azAZ '"));
    }

    [Theory]
    [InlineData("", 0x811c9dc5u)]
    [InlineData("a", 0xe40c292cu)]
    [InlineData("foobar", 0xbf9cf968u)]
    public void Fnv1a_matches_the_published_test_vectors(string text, uint expected) =>
        Assert.Equal(expected, NameSplit.Fnv1a32(text));

    [Fact]
    public void The_shared_data_splits_into_14415_1785_1794()
    {
        var data = NamesData.Load(TestData.NamesFolder);
        Assert.Equal(20074, data.Stats.Lines);
        Assert.Equal(14415, data.SplitOf(Split.Train).Count);
        Assert.Equal(1785, data.SplitOf(Split.Validation).Count);
        Assert.Equal(1794, data.SplitOf(Split.Test).Count);
    }

    [Fact]
    public void Labels_are_the_file_names_sorted_ordinally()
    {
        var data = NamesData.Load(TestData.NamesFolder);
        Assert.Equal(18, data.Labels.Count);
        Assert.Equal("Arabic", data.Labels[0]);
        Assert.Equal("Vietnamese", data.Labels[^1]);
        for (var i = 1; i < data.Labels.Count; i++)
            Assert.True(string.CompareOrdinal(data.Labels[i - 1], data.Labels[i]) < 0);
    }

    [Fact]
    public void No_name_is_in_two_splits_and_no_pair_is_duplicated()
    {
        var data = NamesData.Load(TestData.NamesFolder);
        Assert.Equal(data.Pairs.Count, data.Pairs.Distinct().Count());
        var splitsOfName = data.Pairs.GroupBy(p => p.Name).Select(g => g.Select(p => NameSplit.Of(p.Name)).Distinct().Count());
        Assert.All(splitsOfName, n => Assert.Equal(1, n));
    }

    [Fact]
    public void The_tutorial_zip_reads_in_place_like_the_folder()
    {
        var folder = TestData.NamesFolder;
        var zip = TestData.TutorialZip(TestData.TempFolder());
        var fromFolder = NamesData.Load(folder);
        var fromZip = NamesData.Load(zip);
        Assert.Equal(fromFolder.Labels, fromZip.Labels);
        Assert.Equal(fromFolder.Pairs, fromZip.Pairs);
    }

    [Fact]
    public void Invalid_utf8_names_the_file_and_the_line()
    {
        var folder = TestData.TempFolder();
        File.WriteAllText(Path.Combine(folder, "English.txt"), "Smith\nJones\n");
        File.WriteAllBytes(Path.Combine(folder, "Greek.txt"), [.. Encoding.UTF8.GetBytes("Papadopoulos\nAlexiou\n"), 0x41, 0xFF, 0x42, (byte)'\n']);
        var error = Assert.Throws<DataException>(() => NamesData.Load(folder));
        Assert.Contains("Greek.txt line 3", error.Message);
        Assert.Contains("UTF-8", error.Message);
    }

    [Fact]
    public void Names_that_normalise_to_nothing_are_skipped_and_counted()
    {
        var folder = TestData.TempFolder();
        File.WriteAllText(Path.Combine(folder, "Chinese.txt"), "Zhang\n张\nLi\n\n");
        File.WriteAllText(Path.Combine(folder, "English.txt"), "Smith\r\nSmith\r\n");
        var data = NamesData.Load(folder);
        Assert.Equal(1, data.Stats.EmptyAfterNormalisation);
        Assert.Equal([new LabelledName("Zhang", 0), new LabelledName("Li", 0), new LabelledName("Smith", 1)], data.Pairs);
    }
}
