"""Skype markup -> text + structure: each message type, each text rule, malformed input."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etl_assets.etl.transform import content as content_module
from etl_assets.etl.transform.content import (
    Attachment,
    Call,
    CallParticipant,
    ContactCard,
    Link,
    Location,
    Mention,
    ParsedContent,
    Poll,
    Quote,
    ThreadEvent,
    parse_content,
    strip_markup,
)

UTC = timezone.utc
OBJ = "https://api.asm.skype.com/v1/objects"


def text_of(content: str, message_type: str = "RichText") -> str:
    return parse_content(message_type, content).text


# --------------------------------------------------------------------------- basics


def test_none_and_empty_give_empty_result():
    assert parse_content("RichText", None) == ParsedContent()
    assert parse_content(None, None) == ParsedContent()
    assert parse_content("RichText", "") == ParsedContent()
    assert parse_content("RichText", "   \n ") == ParsedContent()


def test_plain_text_fast_path_is_identity_after_strip():
    assert text_of("Flights booked") == "Flights booked"
    assert text_of("  two\nlines  ") == "two\nlines"
    assert text_of("(1f440_eyes) ~strike~ (wave)") == "(1f440_eyes) ~strike~ (wave)"


def test_results_do_not_share_lists():
    a = parse_content("RichText", "x")
    b = parse_content("RichText", "y")
    a.mentions.append(Mention("8:live:a", "A"))
    assert b.mentions == [] and ParsedContent().mentions == []
    assert ParsedContent().links is not ParsedContent().links


def test_non_string_inputs_do_not_raise():
    assert text_of(b"a<b>c</b>") == "ac"  # type: ignore[arg-type]
    assert parse_content(123, "x").text == "x"  # type: ignore[arg-type]
    assert strip_markup(None) == ""


# --------------------------------------------------------------------------- text rules


@pytest.mark.parametrize(
    "markup, expected",
    [
        ("a<br>b", "a\nb"),
        ("a<br/>b", "a\nb"),
        ("a<br />b<BR>c", "a\nb\nc"),
        ("<p>a</p><p>b</p>", "a\nb"),
        ("a<p>b</p>c", "a\nb\nc"),
        ("<div>one</div><div>two</div>", "one\ntwo"),
        ("x</b>y", "xy"),
        ("x<b>y</b>z", "xyz"),
        ("<b>bold</b> <i>it</i> <s>gone</s> <u>under</u>", "bold it gone under"),
        ('<pre raw_pre="{code}">x = 1</pre>done', "x = 1\ndone"),
        ("keep\nnewlines\n\nhere <b>ok</b>", "keep\nnewlines\n\nhere ok"),
        ('<c_i id="00000000-0000" style="0"></c_i>hello', "hello"),
        ("<attribution>src</attribution><context>ctx</context>body", "src\nctx\nbody"),
        ("<bing-response>Answer <b>here</b></bing-response>", "Answer here"),
        ("   <b> padded </b>   ", "padded"),
    ],
)
def test_formatting_and_breaks(markup, expected):
    assert text_of(markup) == expected


@pytest.mark.parametrize(
    "markup, expected",
    [
        ("Tom &amp; Jerry", "Tom & Jerry"),
        ("1 &lt; 2 &gt; 0", "1 < 2 > 0"),
        ("it&apos;s &quot;ok&quot;", "it's \"ok\""),
        ("smile &#128512; &#x1F600; &#X1f600;", "smile \U0001F600 \U0001F600 \U0001F600"),
        ("pair &#55357;&#56832;", "pair \U0001F600"),
        ("&#55000;&#56832; &#xD83D;&amp;", "\ud6d8&#56832; &#xD83D;&"),
        ("&nbsp;x", "x"),
        ("R&D <b>team</b>", "R&D team"),
        ("a &amp b", "a &amp b"),
        ("&unknown; &#; &#xZZ; &#0; &#xD800; &#99999999;", "&unknown; &#; &#xZZ; &#0; &#xD800; &#99999999;"),
        ("fish & chips", "fish & chips"),
        ("&#146;quoted&#146;", "\u2019quoted\u2019"),
    ],
)
def test_entities(markup, expected):
    assert text_of(markup) == expected


def test_emoticons_keep_inner_text_and_record_type():
    r = parse_content(
        "RichText", 'Are we still on for <b>Saturday</b>? <ss type="smile">:)</ss> <ss type="hi">(wave)</ss>'
    )
    assert r.text == "Are we still on for Saturday? :) (wave)"
    assert r.emoticons == ["smile", "hi"]


def test_empty_emoticon_shows_its_type():
    r = parse_content("RichText", 'hi <ss type="wave"/>')
    assert r.text == "hi (wave)"
    assert r.emoticons == ["wave"]


def test_mentions():
    r = parse_content("RichText", 'Chapter 3 by Friday? <at id="8:live:.cid.d0d1">Dev Rao</at> you in?')
    assert r.text == "Chapter 3 by Friday? @Dev Rao you in?"
    assert r.mentions == [Mention(person_id="8:live:.cid.d0d1", name="Dev Rao")]


def test_mention_everyone_and_empty_mentions():
    r = parse_content("RichText", '<at id="*">all</at> lunch? <at id="*"></at> <at id="8:live:x"></at>')
    assert r.text == "@all lunch? @all @8:live:x"
    assert r.mentions == [Mention("*", "all"), Mention("*", "all"), Mention("8:live:x", "8:live:x")]


def test_mention_with_at_sign_inside_is_not_doubled():
    r = parse_content("RichText", '<at id="8:live:x">@Ann</at>')
    assert r.text == "@Ann"
    assert r.mentions == [Mention("8:live:x", "Ann")]


def test_links_keep_text_or_href():
    r = parse_content(
        "RichText",
        'see <a href="https://example.com/a?x=1&amp;y=2">the page</a> and <a href="https://example.com/b"></a>',
    )
    assert r.text == "see the page and https://example.com/b"
    assert r.links == [
        Link(url="https://example.com/a?x=1&y=2", text="the page"),
        Link(url="https://example.com/b", text="https://example.com/b"),
    ]


def test_bare_urls_become_links_without_trailing_punctuation():
    r = parse_content("RichText", "read https://example.com/x. Also (http://en.wikipedia.org/wiki/A_(b)), ok")
    assert [link.url for link in r.links] == ["https://example.com/x", "http://en.wikipedia.org/wiki/A_(b)"]
    assert r.text == "read https://example.com/x. Also (http://en.wikipedia.org/wiki/A_(b)), ok"


def test_anchor_whose_text_is_its_url_is_one_link():
    r = parse_content("RichText", '<a href="https://example.com/x">https://example.com/x</a>')
    assert r.links == [Link("https://example.com/x", "https://example.com/x")]


def test_bare_url_on_fast_path():
    r = parse_content("RichText", "https://example.com/path?q=1")
    assert r.links == [Link("https://example.com/path?q=1", "https://example.com/path?q=1")]


# --------------------------------------------------------------------------- quotes


def quote_markup(prefix: str, quoted: str = "Are we still on for Saturday?", reply: str = "Of course") -> str:
    return (
        '<quote author="8:live:.cid.b0b1" authorname="Bea Stone" timestamp="1600529710" '
        'conversation="19:abc@thread.skype" messageid="1600529710000" cuid="123">'
        f"<legacyquote>{prefix}</legacyquote>{quoted}"
        "<legacyquote>\n\n&lt;&lt;&lt; </legacyquote></quote>"
        f"{reply}"
    )


@pytest.mark.parametrize(
    "prefix",
    [
        "[1600529710] Bea Stone: ",
        "[12:35:59] Bea Stone: ",
        "[15/03/2019 12:34:56] Bea Stone: ",
        "[30/06/2026 09:20] Bea Stone: ",
    ],
)
def test_quote_separated_from_reply(prefix):
    r = parse_content("RichText", quote_markup(prefix))
    assert r.text == "Of course"
    assert r.quotes == [
        Quote(
            author_id="8:live:.cid.b0b1",
            author_name="Bea Stone",
            quoted_at=datetime(2020, 9, 19, 15, 35, 10, tzinfo=UTC),
            conversation_id="19:abc@thread.skype",
            message_id="1600529710000",
            text="Are we still on for Saturday?",
        )
    ]


@pytest.mark.parametrize(
    "prefix",
    ["[1600529710] Bea Stone: ", "[12:35:59] Bea Stone: ", "[15/03/2019 12:34:56] Bea Stone: "],
)
def test_legacy_prefix_without_legacyquote_tags_is_removed(prefix):
    r = parse_content("RichText", f'<quote authorname="Bea Stone">{prefix}quoted words\n\n&lt;&lt;&lt; </quote>reply')
    assert r.text == "reply"
    assert r.quotes[0].text == "quoted words"


def test_text_before_and_after_quote_and_markup_in_quote():
    r = parse_content(
        "RichText",
        'Yes! <quote author="8:live:a"><legacyquote>[1600529710] A: </legacyquote>'
        '<b>bold</b> <at id="8:live:c">Cy</at><legacyquote>\n\n&lt;&lt;&lt; </legacyquote></quote>Of course',
    )
    assert r.text == "Yes! Of course"
    assert r.quotes[0].text == "bold @Cy"
    assert r.mentions == []


def test_quote_between_words_does_not_glue_them():
    r = parse_content("RichText", "a<quote>q</quote>b")
    assert r.text.split() == ["a", "b"]
    assert r.quotes[0].text == "q"


def test_two_quotes_and_bad_timestamp():
    r = parse_content("RichText", '<quote timestamp="soon">one</quote><quote timestamp="1600529710123">two</quote>both')
    assert [q.text for q in r.quotes] == ["one", "two"]
    assert r.quotes[0].quoted_at is None
    assert r.quotes[1].quoted_at == datetime(2020, 9, 19, 15, 35, 10, 123000, tzinfo=UTC)
    assert r.quotes[0].author_id is None
    assert r.text == "both"


def test_unclosed_quote_keeps_its_text_visible():
    r = parse_content("RichText", '<quote author="8:live:x">quoted and then the reply')
    assert r.text == "quoted and then the reply"
    assert r.quotes[0].text == "quoted and then the reply"
    assert r.quotes[0].author_id == "8:live:x"


# --------------------------------------------------------------------------- edits and deletes


def test_edit_marker_sets_edited_at_and_never_shows():
    r = parse_content("RichText", 'fixed <b>typo</b><e_m ts="1600000000" ts_ms="1600000000123" a="live:x" t="61"/>')
    assert r.text == "fixed typo"
    assert r.edited_at == datetime(2020, 9, 13, 12, 26, 40, 123000, tzinfo=UTC)
    assert r.deleted is False


def test_edit_marker_seconds_only():
    r = parse_content("RichText", 'x<e_m ts="1600000000" a="live:x" t="61"></e_m>')
    assert r.text == "x"
    assert r.edited_at == datetime(2020, 9, 13, 12, 26, 40, tzinfo=UTC)


def test_edit_marker_with_bad_numbers():
    r = parse_content("RichText", 'x<e_m ts="abc" ts_ms="99999999999999999999999"/>')
    assert r.text == "x"
    assert r.edited_at is None


def test_unterminated_edit_marker_not_in_text():
    assert text_of('hi <e_m ts="1600000000" a="live:x"') == "hi"


def test_marker_only_means_deleted():
    r = parse_content("RichText", '<e_m ts="1600000000" ts_ms="1600000000000" a="live:x" t="61"/>')
    assert r.deleted is True and r.text == ""
    assert r.edited_at == datetime(2020, 9, 13, 12, 26, 40, tzinfo=UTC)
    assert parse_content("RichText", ' \n<e_m ts="1"/> ').deleted is True
    assert parse_content("RichText", "").deleted is False


def test_edited_previous_message_prefix_removed():
    r = parse_content("RichText", "Edited previous message: new <b>words</b>")
    assert r.text == "new words"
    assert r.edited_at is None and not r.deleted
    assert text_of("Edited previous message: plain") == "plain"


# --------------------------------------------------------------------------- malformed markup


@pytest.mark.parametrize(
    "markup, expected",
    [
        ("<b>unclosed bold", "unclosed bold"),
        ("<b><i>x</b>y</i>z", "xyz"),
        ("a < b and c > d", "a < b and c > d"),
        ("1<2 &", "1<2 &"),
        ("x <y", "x <y"),
        ("<", "<"),
        ("<<<>>>", "<<<>>>"),
        ("</ b>", "</ b>"),
        ('<a href="x>link</a> after', "link after"),
        ("<a href=unquoted>u</a>", "u"),
        ("<a href='single'>s</a>", "s"),
        ('<ss type="smile>:)</ss>', ":)"),
        ("<!-- comment -->x<![CDATA[ raw <b> ]]>y", "x raw <b> y"),
        ("<legacyquote>unclosed legacy", "unclosed legacy"),
        ("<at id=>no id</at>", "@no id"),
        ("<b>" * 400 + "deep" + "</b>" * 3, "deep"),
        ("<p" + " x" * 1000, "<p" + " x" * 1000),
    ],
)
def test_malformed_markup(markup, expected):
    assert text_of(markup) == expected


def test_broken_attribute_keeps_link_target():
    r = parse_content("RichText", '<a href="https://e.com/x>click</a>')
    assert r.text == "click"
    assert r.links == [Link("https://e.com/x", "click")]


# --------------------------------------------------------------------------- shared objects


def uriobject(type_: str, inner: str, docid: str = "0-neu-d6-81ec", extra_attrs: str = "") -> str:
    return (
        f'<URIObject type="{type_}" uri="{OBJ}/{docid}" url_thumbnail="{OBJ}/{docid}/views/imgt1" '
        f'doc_id="{docid}"{extra_attrs}>{inner}</URIObject>'
    )


def test_picture():
    inner = (
        "To view this shared photo, go to: "
        '<a href="https://login.skype.com/login/sso?go=xmmfallback?pic=0-neu-d6-81ec">'
        "https://login.skype.com/login/sso?go=xmmfallback?pic=0-neu-d6-81ec</a>"
        '<OriginalName v="IMG_1.jpg"></OriginalName><FileSize v="123456"></FileSize>'
        '<meta type="photo" originalName="IMG_1.jpg"/>'
    )
    r = parse_content("RichText/UriObject", uriobject("Picture.1", inner, extra_attrs=' width="1024" height="768"'))
    assert r.text == "IMG_1.jpg"
    assert r.links == []
    assert r.attachments == [
        Attachment(
            kind="photo",
            uri_type="Picture.1",
            original_name="IMG_1.jpg",
            size_bytes=123456,
            width=1024,
            height=768,
            duration_seconds=None,
            doc_id="0-neu-d6-81ec",
            uri=f"{OBJ}/0-neu-d6-81ec",
            thumbnail_uri=f"{OBJ}/0-neu-d6-81ec/views/imgt1",
            extra=None,
        )
    ]


def test_picture_caption_kept_boilerplate_in_other_language_dropped():
    inner = (
        'Om du vill visa den här bilden går du till: <a href="https://login.skype.com/login/sso?x=1">'
        "https://login.skype.com/login/sso?x=1</a> Look at <b>this</b>"
        '<meta type="photo" originalName="cat.png"/>'
    )
    r = parse_content("RichText/UriObject", uriobject("Picture.1", inner))
    assert r.text == "Look at this"
    assert r.attachments[0].original_name == "cat.png"


def test_doc_id_falls_back_to_uri_and_numbers_are_lenient():
    content = (
        f'<URIObject type="Picture.1" uri="{OBJ}/0-weu-d1-abc" width="wide" height="12.0">'
        '<OriginalName v="a.jpg"/><FileSize v="lots"/></URIObject>'
    )
    att = parse_content("RichText/UriObject", content).attachments[0]
    assert (att.doc_id, att.width, att.height, att.size_bytes) == ("0-weu-d1-abc", None, 12, None)
    assert att.thumbnail_uri is None


def test_generic_file():
    content = (
        f'<URIObject uri="{OBJ}/0-weu-d3-f" url_thumbnail="{OBJ}/0-weu-d3-f/views/thumbnail" type="File.1" '
        'doc_id="0-weu-d3-f">To view this file, go to: <a href="https://login.skype.com/login/sso?go=webclient.xmm'
        '&amp;docid=0-weu-d3-f">https://login.skype.com/login/sso?go=webclient.xmm&amp;docid=0-weu-d3-f</a>'
        '<OriginalName v="menu &amp; prices.pdf"></OriginalName><FileSize v="44712"></FileSize></URIObject>'
    )
    r = parse_content("RichText/Media_GenericFile", content)
    assert r.text == "menu & prices.pdf"
    att = r.attachments[0]
    assert (att.kind, att.uri_type, att.original_name, att.size_bytes, att.doc_id) == (
        "file", "File.1", "menu & prices.pdf", 44712, "0-weu-d3-f",
    )


@pytest.mark.parametrize(
    "message_type, uri_type, kind",
    [
        ("RichText/Media_Video", "Video.1/Message.1", "video"),
        ("RichText/Media_AudioMsg", "Audio.1/Message.1", "voice_message"),
        ("RichText/UriObject", "Audio.1", "audio"),
        ("RichText/Media_CallRecording", "Video.2/CallRecording.1", "call_recording"),
        ("RichText/Media_FlikMsg", "Video.1/Flik.1", "moji"),
        ("RichText/Media_Card", "SWIFT.1", "card"),
        ("RichText/Media_GenericFile", "File.1", "file"),
        ("RichText/UriObject", "Picture.1", "photo"),
        ("RichText/Media_Album", "Picture.1", "album"),
        ("RichText/UriObject", "Something.9", "other"),
        ("RichText/Media_Video", "", "video"),
        ("RichText/Media_AudioMsg", "", "voice_message"),
    ],
)
def test_attachment_kind(message_type, uri_type, kind):
    r = parse_content(message_type, uriobject(uri_type, '<OriginalName v="x.bin"/>'))
    assert r.attachments[0].kind == kind
    assert r.attachments[0].uri_type == (uri_type or None)


def test_voice_message():
    content = (
        f'<URIObject type="Audio.1/Message.1" url_thumbnail="{OBJ}/0-a/views/thumbnail" uri="{OBJ}/0-a">'
        "<Title>Voice message</Title>"
        '<a href="https://login.skype.com/login/sso?go=webclient.xmm&amp;am=0-a">Play</a>'
        '<OriginalName v="audio.m4a" /></URIObject>'
    )
    r = parse_content("RichText/Media_AudioMsg", content)
    assert r.text == "audio.m4a"
    att = r.attachments[0]
    assert (att.kind, att.doc_id, att.original_name) == ("voice_message", "0-a", "audio.m4a")
    assert att.extra == {"title": "Voice message"}
    assert r.links == []


def test_title_used_when_no_file_name():
    r = parse_content("RichText/Media_Video", uriobject("Video.1/Message.1", "<Title>Holiday clip</Title>"))
    assert r.text == "Holiday clip"


def test_call_recording():
    content = f"""<URIObject type="Video.2/CallRecording.1"
    url_thumbnail="{OBJ}/0-c/views/thumbnail"
    uri="{OBJ}/0-c" version="1.0">
    <RecordingStatus status="Success" code="200"><amsErrorResult /></RecordingStatus>
    <SessionEndReason value="CallEnded" />
    <Title>Video</Title>
    <a href="https://login.skype.com/login/sso?go=webclient.xmm&am=0-c">Play</a>
    <OriginalName v="Video.mp4" />
    <RecordingInitiatorId value="8:live:someone" />
    <Identifiers><Id type="callId" value="6c8259ec-41c7" /><Id type="chunkIndex" value="0" /></Identifiers>
    <RecordingContent timestamp="2020-09-06T08:40:51.1096934Z" duration="0:00:24.28">
        <item type="video" uri="{OBJ}/0-c" />
    </RecordingContent>
</URIObject>"""
    r = parse_content("RichText/Media_CallRecording", content)
    assert r.text == "Video.mp4"
    att = r.attachments[0]
    assert att.kind == "call_recording"
    assert att.duration_seconds == pytest.approx(24.28)
    assert att.doc_id == "0-c"
    assert att.extra == {"title": "Video", "call_id": "6c8259ec-41c7"}


@pytest.mark.parametrize(
    "duration, seconds",
    [("1:02:03.5", 3723.5), ("02:03", 123.0), ("12.5", 12.5), ("PT1M2S", 62.0), ("bad", None), ("1:x:3", None)],
)
def test_durations(duration, seconds):
    content = uriobject("Video.2/CallRecording.1", f'<RecordingContent duration="{duration}"/>')
    assert parse_content("RichText/Media_CallRecording", content).attachments[0].duration_seconds == seconds


def swift_b64(card: dict, strip_padding: bool = False) -> str:
    raw = base64.b64encode(json.dumps(card).encode()).decode()
    return raw.rstrip("=") if strip_padding else raw


def test_swift_card_decoded():
    card = {
        "type": "message/card",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.flex",
                "content": {"subtitle": "Happy dance", "images": [{"url": "https://media.example/x.gif"}]},
            }
        ],
    }
    content = (
        '<URIObject type="SWIFT.1" url_thumbnail="https://urlp.asm.skype.com/v1/url/content?url=x">'
        'Om du vill visa det här kortet går du till: <a href="https://go.skype.com/cards.unsupported">'
        "https://go.skype.com/cards.unsupported</a>\n    <Title></Title>\n"
        f'    <Swift b64="{swift_b64(card, strip_padding=True)}"/></URIObject>'
    )
    r = parse_content("RichText/Media_Card", content)
    assert r.text == "Happy dance"
    assert r.attachments[0].kind == "card"
    assert r.attachments[0].extra == {"card": card}
    assert r.links == []


def test_swift_card_not_decodable_is_kept_raw():
    r = parse_content("RichText/Media_Card", '<URIObject type="SWIFT.1"><Swift b64="%%%not base64"/></URIObject>')
    assert r.attachments[0].extra == {"swift_b64": "%%%not base64"}
    assert r.text == ""


def test_album():
    content = (
        f'<URIObject type="Picture.1" uri="{OBJ}/0-p1"><OriginalName v="a.jpg"/></URIObject>'
        f'<URIObject type="Picture.1" uri="{OBJ}/0-p2"><OriginalName v="b.jpg"/></URIObject>'
    )
    r = parse_content("RichText/Media_Album", content)
    assert [(a.kind, a.doc_id, a.original_name) for a in r.attachments] == [
        ("album", "0-p1", "a.jpg"),
        ("album", "0-p2", "b.jpg"),
    ]
    assert r.text == "a.jpg\nb.jpg"


def test_scheduled_call():
    content = '<URIObject type="ScheduledCall.1" subject="Weekly &amp; sync" scheduledTime="1600000000000"></URIObject>'
    r = parse_content("RichText/ScheduledCallInvite", content)
    assert r.text == "Weekly & sync"
    att = r.attachments[0]
    assert att.kind == "scheduled_call"
    assert att.extra == {
        "subject": "Weekly & sync",
        "scheduledtime": "1600000000000",
        "scheduled_at": "2020-09-13T12:26:40+00:00",
    }


def test_old_files_format():
    content = (
        '<files alt="sent files"><file index="0" size="123" url="https://x.example/f1">a.txt</file>'
        '<file index="1" size="big" url="https://x.example/f2">b &amp; c.txt</file></files>'
    )
    r = parse_content("RichText/Files", content)
    assert r.attachments == [
        Attachment("file", original_name="a.txt", size_bytes=123, uri="https://x.example/f1", extra={"index": 0}),
        Attachment("file", original_name="b & c.txt", size_bytes=None, uri="https://x.example/f2", extra={"index": 1}),
    ]
    assert r.text == "a.txt, b & c.txt"


def test_inline_image_becomes_photo_attachment():
    r = parse_content("RichText", 'Have you seen this? <img src="https://upload.example/dice.png" alt="image"/>')
    assert r.text == "Have you seen this?"
    assert r.attachments == [Attachment(kind="photo", uri="https://upload.example/dice.png", extra={"alt": "image"})]


def test_emoji_image_shows_its_alt():
    assert text_of('ok<img alt="\U0001F600" itemtype="http://schema.skype.com/Emoji" src="x"/>!') == "ok\U0001F600!"


# --------------------------------------------------------------------------- poll, contacts, location


def test_poll_full():
    content = (
        '<URIObject type="Poll" title="Where next?" expirationTimeMs="1740844380000" '
        'optionsEncoded="Telegram|WhatsApp|Slack" allowMultipleVotes="true">Where next?</URIObject>'
    )
    r = parse_content("Poll", content)
    assert r.poll == Poll(
        question="Where next?",
        options=["Telegram", "WhatsApp", "Slack"],
        multiple_votes=True,
        expires_at=datetime(2025, 3, 1, 15, 53, tzinfo=UTC),
    )
    assert r.text == "Where next?"
    assert r.attachments == []


def test_poll_minimal():
    r = parse_content("Poll", '<URIObject type="Poll" optionsEncoded="Fri|Sat" allowMultipleVotes="maybe"></URIObject>')
    assert r.poll == Poll(question=None, options=["Fri", "Sat"], multiple_votes=None, expires_at=None)
    assert r.text == ""


def test_contacts():
    content = '<contacts><c t="s" s="8:live:x" f="Full Name"/><c t="s" s="8:live:y"></c></contacts>'
    r = parse_content("RichText/Contacts", content)
    assert r.contacts == [ContactCard("8:live:x", "Full Name"), ContactCard("8:live:y", None)]
    assert r.text == "Full Name, 8:live:y"


def test_location():
    content = (
        '<location latitude="59329323" longitude="-18068581" address="Stockholm, Sweden" timeStamp="1600000000000">'
        '<a href="https://www.bing.com/maps?cp=59.3~18.0&amp;lvl=15">Stockholm, Sweden</a></location>'
    )
    r = parse_content("RichText/Location", content)
    assert r.location == Location(
        latitude=pytest.approx(59.329323),
        longitude=pytest.approx(-18.068581),
        address="Stockholm, Sweden",
        url="https://www.bing.com/maps?cp=59.3~18.0&lvl=15",
    )
    assert r.text == "Stockholm, Sweden"


def test_location_with_bad_numbers():
    r = parse_content("RichText/Location", '<location latitude="north" longitude="" address="Somewhere"/>')
    assert r.location == Location(None, None, "Somewhere", None)


# --------------------------------------------------------------------------- calls


def test_call_ended():
    content = (
        '<partlist type="ended" alt="" callId="1782900400000">'
        '<part identity="8:live:a"><name>Sam Vale</name><duration>84.82</duration></part>'
        '<part identity="8:live:b"><name>Bea &amp; Co</name><duration>n/a</duration></part></partlist>'
    )
    r = parse_content("Event/Call", content)
    assert r.call == Call(
        call_id="1782900400000",
        state="ended",
        participants=[CallParticipant("8:live:a", "Sam Vale", 84.82), CallParticipant("8:live:b", "Bea & Co", None)],
    )
    assert r.text == ""


def test_call_started_without_parts():
    r = parse_content("Event/Call", '<partlist type="started" alt=""></partlist>')
    assert r.call == Call(call_id=None, state="started", participants=[])


# --------------------------------------------------------------------------- thread activity


def thread(tag: str, body: str, eventtime: str = "1594056032575", initiator: str = "8:live:a") -> str:
    return f"<{tag}><eventtime>{eventtime}</eventtime><initiator>{initiator}</initiator>{body}</{tag}>"


EVENT_AT = datetime(2020, 7, 6, 17, 20, 32, 575000, tzinfo=UTC)


def test_add_member_several_targets():
    content = thread(
        "addmember",
        "<target>8:live:b</target><detailedtargetinfo><id>8:live:b</id></detailedtargetinfo><target>8:live:c</target>",
    )
    r = parse_content("ThreadActivity/AddMember", content)
    assert r.thread_event == ThreadEvent("member_added", EVENT_AT, "8:live:a", ["8:live:b", "8:live:c"], None, None)
    assert r.text == ""


def test_delete_member_removed_vs_left():
    removed = parse_content("ThreadActivity/DeleteMember", thread("deletemember", "<target>8:live:b</target>"))
    left = parse_content("ThreadActivity/DeleteMember", thread("deletemember", "<target>8:live:a</target>"))
    assert removed.thread_event.event_type == "member_removed"
    assert left.thread_event == ThreadEvent("member_left", EVENT_AT, "8:live:a", ["8:live:a"])


def test_topic_update_text_is_topic():
    r = parse_content("ThreadActivity/TopicUpdate", thread("topicupdate", "<value>Book &amp; club</value>"))
    assert r.thread_event == ThreadEvent("topic_changed", EVENT_AT, "8:live:a", [], "Book & club", None)
    assert r.text == "Book & club"


def test_picture_update_strips_url_prefix():
    r = parse_content(
        "ThreadActivity/PictureUpdate", thread("pictureupdate", f"<value>URL@{OBJ}/0-p/views/avatar_fullsize</value>")
    )
    assert r.thread_event.event_type == "picture_changed"
    assert r.thread_event.value == f"{OBJ}/0-p/views/avatar_fullsize"
    assert r.text == ""


def test_role_update():
    r = parse_content(
        "ThreadActivity/RoleUpdate", thread("roleupdate", "<target><id>8:live:b</id><role>admin</role></target>")
    )
    assert r.thread_event == ThreadEvent("role_changed", EVENT_AT, "8:live:a", ["8:live:b"], None, "admin")


@pytest.mark.parametrize(
    "tag, event_type",
    [("historydisclosedupdate", "history_disclosed_changed"), ("joiningenabledupdate", "joining_enabled_changed")],
)
def test_boolean_thread_settings(tag, event_type):
    r = parse_content("ThreadActivity/X", thread(tag, "<value>true</value>"))
    assert r.thread_event == ThreadEvent(event_type, EVENT_AT, "8:live:a", [], "true", None)
    assert r.text == ""


def test_unknown_thread_activity_and_bad_eventtime():
    r = parse_content("ThreadActivity/SomethingNew", thread("somethingnew", "<value>v</value>", eventtime="later"))
    assert r.thread_event == ThreadEvent("other", None, "8:live:a", [], "v", None)
    assert r.text == ""


# --------------------------------------------------------------------------- other types


def test_text_type_is_plain():
    r = parse_content("Text", "  a <b>b</b> &amp; c  ")
    assert r.text == "a <b>b</b> &amp; c"
    assert r.mentions == [] and r.attachments == []


def test_html_type_blocks_and_whitespace():
    r = parse_content(
        "RichText/Html",
        "<p>See you <i>then</i></p>\n  <p>second\n   line</p><ul><li>one</li><li>two</li></ul>",
    )
    assert r.text == "See you then\nsecond line\none\ntwo"


@pytest.mark.parametrize(
    "message_type, content, expected",
    [
        ("Notice", '[{"content":{"title":"Hi &amp; bye"}}]', '[{"content":{"title":"Hi & bye"}}]'),
        ("PopCard", '[{"cardType":1}]', '[{"cardType":1}]'),
        ("Translation", '{"type":1,"data":{"state":"Pending"}}', '{"type":1,"data":{"state":"Pending"}}'),
        ("ThreadActivity/E2EEHandshakeInvite", "AAECAwQ=", "AAECAwQ="),
        ("EndToEndEncryption/Message", "<e2e>c2VjcmV0</e2e>", "c2VjcmV0"),
        ("InviteFreeRelationshipChanged/Initialized", "<b>Hi</b>, let&apos;s talk", "Hi, let's talk"),
        ("Event/BingBot", "<bing-response>Answer</bing-response>", "Answer"),
        ("Totally/New", "<weird a='1'>keep me</weird>", "keep me"),
        (None, "no type <i>here</i>", "no type here"),
    ],
)
def test_other_types_keep_text(message_type, content, expected):
    r = parse_content(message_type, content)
    assert r.text == expected
    assert r.attachments == [] and r.call is None and r.thread_event is None and r.poll is None


def test_strip_markup_matches_parse_content_text():
    content = 'Hi <at id="8:live:x">X</at>! <quote>old</quote>new<e_m ts="1"/>'
    assert strip_markup(content) == parse_content("RichText", content).text == "Hi @X! new"


# --------------------------------------------------------------------------- properties

MARKUP_ALPHABET = st.sampled_from(
    list("<>/&;#\"'= abcxyz19\n")
    + ["<b>", "</b>", "<br>", "&amp;", "<quote>", "</quote>", "<at id='*'>", "<e_m ts='1'/>", "<legacyquote>",
       "<URIObject type='Picture.1'>", "<partlist>", "<addmember>", "<target>", "<![CDATA[", "]]>", "<!--", "-->",
       "&#x1F600;", "&#55357;", "&#56832;", "<a href='x'>", "</a>", "<ss type='smile'>"]
)
MESSAGE_TYPES = st.one_of(
    st.none(),
    st.text(max_size=30),
    st.sampled_from(
        ["RichText", "Text", "RichText/Html", "RichText/UriObject", "RichText/Media_Card", "RichText/Media_Album",
         "RichText/Files", "RichText/Contacts", "RichText/Location", "RichText/ScheduledCallInvite", "Poll",
         "Event/Call", "ThreadActivity/AddMember", "ThreadActivity/Whatever", "Notice"]
    ),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    message_type=MESSAGE_TYPES,
    content=st.one_of(st.text(max_size=300), st.lists(MARKUP_ALPHABET, max_size=60).map("".join)),
)
def test_never_raises(message_type, content):
    """Calls the parser under the public safety net, so a crash cannot hide behind the fallback."""
    result = content_module._parse(message_type, content)
    assert parse_content(message_type, content) == result
    assert result.text == result.text.strip()
    assert "<e_m" not in result.text


@settings(max_examples=200, deadline=None)
@given(message_type=MESSAGE_TYPES, content=st.text(max_size=200).filter(lambda s: "<" not in s and "&" not in s))
def test_plain_text_is_returned_stripped(message_type, content):
    if content.lstrip().startswith("Edited previous message: "):
        return
    assert parse_content(message_type, content).text == content.strip()


WORDS = st.lists(st.from_regex(r"[A-Za-z0-9]{1,8}", fullmatch=True), min_size=1, max_size=12)
SEPARATORS = st.sampled_from([" ", "\n", "<br>", "<br/>", " <br /> ", "<p></p>", "\t"])
WRAPPERS = st.sampled_from(
    ["b", "i", "s", "u", "em", "strong", "span", "font", "c_i", "pre", "p", "div", "attribution", "context",
     "bing-response", "a href='https://e.example/'", "ss type='smile'"]
)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), words=WORDS)
def test_words_survive_formatting(data, words):
    parts = []
    for i, word in enumerate(words):
        if i:
            parts.append(data.draw(SEPARATORS))
        for tag in data.draw(st.lists(WRAPPERS, max_size=3)):
            name = tag.split()[0]
            close = data.draw(st.booleans())
            word = f"<{tag}>{word}" + (f"</{name}>" if close else "")
        parts.append(word)
    content = "".join(parts)
    assert parse_content("RichText", content).text.split() == words


@settings(max_examples=100, deadline=None)
@given(words=WORDS)
def test_words_survive_entities_and_mentions(words):
    content = " ".join(f"<at id='8:live:{w}'>{w}</at>&amp;{w}" for w in words)
    r = parse_content("RichText", content)
    assert r.text.split() == [f"@{w}&{w}" for w in words]
    assert [m.name for m in r.mentions] == words


def test_json_thread_activity_becomes_an_event() -> None:
    parsed = parse_content(
        "ThreadActivity/MemberJoined",
        '{"initiator":"8:live:a","members":[{"id":"8:live:b"},{"id":"8:live:c"}],"eventtime":1594056032575}',
    )
    assert parsed.text == ""
    event = parsed.thread_event
    assert event is not None
    assert (event.event_type, event.initiator, event.targets) == ("member_joined", "8:live:a", ["8:live:b", "8:live:c"])
    assert event.event_at is not None and event.event_at.year == 2020
