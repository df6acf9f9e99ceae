"""Generated, labelled training text for the learned concept extractor (stdlib only).

Each text states likes and dislikes the way people write them; every liked or disliked THING is a
character span with a polarity and a strength (1.0 strong, 0.8 plain, 0.6 mild, 0.5 a bare mention
with no marker). Spans are the shortest noun phrase that names the thing ("zombies" in "anything
with zombies is a no from me", "comédies" in "les comédies"): never the verb, never an article or a
title's 《》. Topics come from many domains (film and TV, music, podcasts, books, food and drink,
products, clothing, games, sports, travel, people and titles) so the head learns how preferences
are stated, not a catalog. Languages: English, French, Chinese, some Spanish and German.

Families of constructions:
- marker before the thing: verbs and idioms ("I can't get enough of X", "je raffole des X",
  "我对X毫无抵抗力"), at each strength, including third person ("my son adores X");
- thing first: "X? Love it.", "X are my jam", "X is a hard pass", "X, c'est non", "X就算了",
  "X一律不看";
- fragments: "No X.", "X please!", "More X.", "Pas de X.", "不要X";
- questions: "Any good X?" (like), "X? Ugh." (dislike), "有没有好看的X？";
- lists: "A, B and C" share their clause's marker; a negation distributes ("I don't like A or B");
- two or three things with opposite signs: contrast and scope ("A but not B", "A, though B bores
  me", "not A, B", "swap A for B", "A oui, B non", "A可以，B不行"), comparatives ("I prefer A to
  B", "A over B any day", "plutôt A que B", "比起A，我更喜欢B": the preferred thing is a plain
  like, the other a mild dislike);
- polarity traps: "not bad" and "I don't hate X" (mild like), "I wouldn't say no to X" (mild
  like), "I never get tired of X" (like), "no wonder I love X" (like), "anything but X" and
  "everything except X" (dislike), "I used to love X but now I can't stand it" (dislike),
  "X? Never again." (dislike);
- verdicts after the thing ("X is my idea of hell", "X are out", "X, never", "X? Only as a last
  resort", "X直接拉黑", "X, c'est exclu"), "what I don't want is X", "X yes but PLEASE no Y";
- hedges ("I guess X are ok", mild like) and bare noun lists with no marker at all ("Film noir and
  gritty crime stories." -> likes at 0.5);
- texts with no preference: greetings, requests without a topic, and plain statements of fact
  that mention a topic ("I watched X yesterday.", "朋友在聊X。"). Decision: these carry NO span,
  because an event or a topic of conversation is not a stated preference; the extractor should
  leave them to the recent-items path. They also appear next to preference clauses, so the head
  learns that a mention is not a like. "I watched X yesterday and loved it" is a like.
Chatty context sentences naming people and places ("My cousin Priya is visiting from
Manchester") sit among the preferences with no span.
Surface noise: multi-sentence texts (1-5 spans, likes and dislikes in any order), fillers,
lower case, ALL CAPS, no punctuation, texting ("luv", "h8", "cant", "jadore", "稀饭"), dropped
letters, stripped French accents, emoji, Chinese half-width punctuation.

One meaning is never produced: a liked mystery genre together with a disliked romance genre (the
shape of a public probe), so the probes stay a fair check.
"""

from __future__ import annotations

import random
import re
import unicodedata
from dataclasses import dataclass

from interest_server.model.concepts import Polarity

POS, NEG = Polarity.POSITIVE, Polarity.NEGATIVE
Label = tuple[Polarity, float]
L10, L8, L6, L5 = (POS, 1.0), (POS, 0.8), (POS, 0.6), (POS, 0.5)
D10, D8, D6 = (NEG, 1.0), (NEG, 0.8), (NEG, 0.6)
STRENGTHS = (1.0, 0.8, 0.6, 0.5)
LANGS = ("en", "fr", "zh", "es", "de")
DEFAULT_LANGS = {"en": 0.45, "fr": 0.22, "zh": 0.23, "es": 0.05, "de": 0.05}


@dataclass(frozen=True)
class LabelledSpan:
    """text[start:end] is the thing liked or disliked."""

    start: int
    end: int
    polarity: Polarity
    strength: float


@dataclass(frozen=True)
class LabelledText:
    text: str
    spans: tuple[LabelledSpan, ...]
    lang: str


# --------------------------------------------------------------------------------------------
# Topics. One entry per line or ";"; a suffix after "|" gives features:
#   en: "!" singular/mass (default: plural when it ends in "s"), "+" plural, "m"/"f" a person
#       (pronoun him/her), "t" a title or group (proper, singular), "N" proper plural.
#   fr/es: "m"/"f" gender, "p" plural, "v" elides like a vowel (h muet), "N" a name (no article,
#       gender from the next letter: "Nf").
#   de: "m"/"f"/"n" gender, "p" plural (German nouns are all capitalised: never lowercased).
#   zh: "T" a title written inside 《》 (outside the span).
# The kind picks the verb ("watch", "listen to", 看/听/吃...) for templates that need one.
# --------------------------------------------------------------------------------------------

KINDS = ("watch", "listen", "read", "eat", "drink", "play", "buy", "wear", "do")

_EN_TOPICS = {
    "watch": """
horror films; horror movies; horror|!; slasher films; zombie movies; zombies; ghost stories;
haunted house movies; psychological thrillers; thrillers; crime dramas; gritty crime stories;
film noir|!; mystery films; mystery movies; mysteries; whodunits; murder mysteries; detective shows;
police procedurals; heist movies; gangster films; mob movies; spy thrillers; action movies;
martial arts films; kung fu movies; car chases; superhero movies; Marvel movies; comic book movies;
disaster movies; war films; war movies; historical dramas; period dramas; costume dramas; biopics;
documentaries; nature documentaries; true crime documentaries; sci-fi|!; science fiction|!;
space operas; time travel stories; alien invasion movies; dystopian films; cyberpunk|!; fantasy|!;
epic fantasy|!; sword and sorcery|!; fairy tales; animated films; cartoons; anime|!; Pixar movies;
Disney movies; kids' stuff|!; family films; musicals; romantic comedies; rom-coms; love stories;
romance|!; romance films; romantic movies; tearjerkers; sappy love stories; melodramas; comedies;
slapstick|!; stand-up specials; sitcoms; dark comedies; satire|!; parodies; mockumentaries;
westerns; cowboy films; spaghetti westerns; cop shows; legal dramas; medical dramas; soap operas;
telenovelas; reality TV|!; dating shows; cooking shows; game shows; talk shows; K-dramas;
Bollywood films; foreign films; arthouse films; slow arthouse dramas; indie films;
black-and-white movies; silent films; old Hollywood classics; cult classics; B-movies;
found footage|!; sequels; remakes; reboots; long TV series|!; miniseries|!; nature shows;
travel shows; YouTube videos; video essays; scary stuff|!; subtitles;
movies where the dog dies; sad endings; jump scares; gore|!; blood and guts|+; teen dramas;
coming-of-age stories; high school movies; sports movies; boxing movies; courtroom dramas;
political thrillers; conspiracy thrillers; survival movies; monster movies; creature features;
vampire films; werewolf movies; samurai films; wuxia films; British comedies; French cinema|!;
Scandinavian crime dramas; Nordic noir|!; Korean thrillers; Japanese horror|!;
Hong Kong action films;
Christmas movies; feel-good movies; chick flicks; buddy cop movies; road movies; epics;
three-hour epics; subtitled films; dubbed movies; cheesy TV movies; musicals with big dance numbers
""",
    "listen": """
jazz|!; smooth jazz|!; free jazz|!; blues|!; rock|!; classic rock|!; punk|!; pop punk|!;
heavy metal|!; death metal|!; black metal|!; metal|!; grunge|!; indie rock|!; indie pop|!; pop|!;
K-pop|!; J-pop|!; hip hop|!; rap|!; trap music|!; drill|!; R&B|!; soul|!; funk|!; disco|!;
house music|!; techno|!; EDM|!; dubstep|!; drum and bass|!; ambient music|!; lo-fi beats;
classical music|!; opera|!; baroque music|!; string quartets; piano music|!; solo piano|!;
acoustic guitar|!; bagpipes; accordion music|!; country music|!; bluegrass|!; folk music|!;
Irish folk|!; reggae|!; ska|!; salsa|!; flamenco|!; bossa nova|!; Afrobeat|!; gospel|!;
Christmas music|!; boy bands; girl groups; film scores; video game soundtracks; synthwave|!;
80s synth-pop|!; shoegaze|!; emo|!; screamo|!; autotune|!; long guitar solos; mumble rap|!;
elevator music|!; chamber music|!; big band|!; swing|!; crooners; sea shanties; yodeling|!;
brass bands; love songs; power ballads; true crime podcasts; history podcasts; comedy podcasts;
interview podcasts; political podcasts; business podcasts; audiobooks; news podcasts;
tech podcasts; sports talk radio|!; self-help podcasts; ASMR|!; meditation apps
Taylor Swift|f; Beyoncé|f; Drake|m; Radiohead|t; the Beatles|N; Metallica|t; BTS|t; Bob Dylan|m;
Ed Sheeran|m; Adele|f; Billie Eilish|f; Bach|m; Mozart|m; Beethoven|m; Miles Davis|m;
John Coltrane|m; Nirvana|t; Coldplay|t; ABBA|t; Queen|t; Daft Punk|t; Bad Bunny|m; Dolly Parton|f;
Frank Sinatra|m; Nickelback|t; Kendrick Lamar|m; Joni Mitchell|f
""",
    "read": """
fantasy novels; sci-fi novels; crime novels; detective novels; detective stories; cozy mysteries;
romance novels; historical fiction|!; literary fiction|!; poetry|!; graphic novels; manga|!;
comics; self-help books; biographies; memoirs; history books; popular science|!; YA novels;
airport thrillers; horror novels; Russian novels; classic literature|!; short stories;
travel writing|!; cookbooks; philosophy books; business books; fan fiction|!; long novels
Stephen King|m; Agatha Christie|f; Jane Austen|f; Tolkien|m; Haruki Murakami|m; J.K. Rowling|f;
Terry Pratchett|m; Dostoevsky|m; Sally Rooney|f
""",
    "eat": """
sushi|!; spicy food|!; Thai food|!; Indian curries; Mexican food|!; tacos; pizza|!;
pineapple on pizza|!; burgers; fast food|!; seafood|!; oysters; raw fish|!; blue cheese|!;
goat cheese|!; mushrooms; olives; anchovies; cilantro|!; garlic|!; onions; Brussels sprouts;
broccoli|!; tofu|!; kale|!; vegan food|!; dark chocolate|!; milk chocolate|!; sweets; desserts;
ice cream|!; licorice|!; marzipan|!; ramen|!; dumplings; hot pot|!; dim sum|!;
Korean barbecue|!; street food|!; fried chicken|!; steak|!; lamb|!; offal|!; liver|!;
spicy wings; pickles; sauerkraut|!; durian|!; stinky tofu|!; baked goods; sourdough bread|!;
French pastries; croissants; salads; cheesecake|!; peanut butter|!
""",
    "drink": """
coffee|!; black coffee|!; espresso|!; green tea|!; bubble tea|!; craft beer|!; IPAs; red wine|!;
natural wine|!; whisky|!; cocktails; energy drinks; soda|!; sparkling water|!; kombucha|!
""",
    "play": """
video games; RPGs; JRPGs; open-world games; first-person shooters; shooters; strategy games;
city builders; puzzle games; platformers; roguelikes; survival games; horror games; racing games;
sports games; fighting games; MMOs; battle royales; mobile games; gacha games; indie games;
retro games; Nintendo games; card games; board games; chess|!; poker|!; crosswords; sudoku|!;
escape rooms; tabletop RPGs; Dungeons & Dragons|t; Minecraft|t; Zelda games; Call of Duty|t;
FIFA|t; Pokémon|t; party games; word games
""",
    "buy": """
running shoes; mechanical keyboards; scented candles; noise-cancelling headphones; smartwatches;
fitness trackers; e-readers; vinyl records; film cameras; mirrorless cameras; gaming laptops;
tablets; smart speakers; air fryers; espresso machines; kitchen gadgets; cast iron pans;
standing desks; ergonomic chairs; houseplants; succulents; fountain pens; notebooks; backpacks;
camping gear|!; yoga mats; electric scooters; e-bikes; drones; VR headsets; skincare products;
perfume|!; essential oils; phone cases; wireless earbuds; robot vacuums; smart home gadgets;
designer handbags; cheap plastic toys; stickers; Lego sets; jigsaw puzzles
""",
    "wear": """
sneakers; high heels; skinny jeans; hoodies; leather jackets; wool sweaters; suits and ties|+;
crop tops; flip-flops; Crocs|N; bright colors; neon colors; floral prints; big logos;
vintage clothes; designer brands; sustainable fashion|!; fast fashion|!; jewelry|!; watches;
baggy jeans; cargo pants; turtlenecks; bucket hats; linen shirts
""",
    "do": """
beach holidays; city breaks; cruises; road trips; backpacking|!; camping|!; hiking|!; museums;
art galleries; theme parks; ski trips; all-inclusive resorts; guided tours; long flights;
crowded places; nightclubs; karaoke|!; live concerts; music festivals; yoga|!; running|!;
swimming|!; pottery classes; cooking classes; gardening|!; fishing|!; hunting|!; knitting|!;
birdwatching|!; escape room parties; wine tastings; bus tours
""",
}
# Titles and people of the screen, kept apart so the "watch" verb applies.
_EN_TOPICS["watch"] += """
The Godfather|t; Star Wars|t; Harry Potter|t; The Lord of the Rings|t; Breaking Bad|t;
Game of Thrones|t; Friends|t; The Office|t; Squid Game|t; Stranger Things|t; Titanic|t;
Toy Story|t; Casablanca|t; Blade Runner|t; The Matrix|t; Jurassic Park|t;
the Fast and Furious movies|N;
James Bond films|N; Twilight|t; Shrek|t; The Sopranos|t; Downton Abbey|t; Doctor Who|t;
Pulp Fiction|t; Tom Hanks|m; Meryl Streep|f; Adam Sandler|m; Nicolas Cage|m; Tom Cruise|m;
Julia Roberts|f; Jackie Chan|m; Keanu Reeves|m; Jim Carrey|m; Wes Anderson|m; Christopher Nolan|m;
Quentin Tarantino|m; Steven Spielberg|m; Hayao Miyazaki|m; Alfred Hitchcock|m; Stanley Kubrick|m;
Greta Gerwig|f; Sofia Coppola|f; Michael Bay|m; Zendaya|f
"""

# Adjectives combined with a head noun at sampling time ("slow French dramas").
_EN_COMBO = {
    "watch": ("slow fast-paced gritty dark cheesy feel-good old classic modern low-budget "
              "big-budget French Korean Japanese British Italian 80s 90s black-and-white quirky "
              "violent sappy mindless smart cerebral long animated indie depressing heartwarming "
              "silly bloody campy predictable subtitled",
              "dramas; comedies; thrillers; horror films; action movies; westerns; musicals; "
              "documentaries; sci-fi films; war films; romances; cartoons; sitcoms; series; "
              "crime shows; mysteries"),
    "listen": ("loud mellow old-school experimental 90s Japanese French instrumental sad upbeat "
               "heavy acoustic live underground mainstream",
               "rock; jazz; pop; hip hop; electronic music; folk; metal; ballads; podcasts"),
    "read": ("long short classic modern Japanese Scandinavian dense light bestselling",
             "novels; thrillers; fantasy books; biographies; poetry; comics"),
    "eat": ("spicy greasy raw sweet fermented deep-fried vegan homemade Japanese Sichuan",
            "food; snacks; noodles; desserts; curries; sandwiches"),
    "play": ("competitive co-op online retro indie long casual",
             "games; shooters; RPGs; puzzle games; strategy games; card games"),
    "buy": ("cheap expensive wireless vintage pink tiny smart handmade",
            "gadgets; headphones; keyboards; candles; cameras; watches"),
    "wear": ("tight baggy bright vintage formal", "clothes; jeans; shoes; dresses; jackets"),
}

_FR_TOPICS = {
    "watch": """
films d'horreur|mp; films d'épouvante|mp; films de zombies|mp; slashers|mp; thrillers|mp;
thrillers psychologiques|mp; polars|mp; films policiers|mp; films noirs|mp; films de mystère|mp;
enquêtes policières|fp; séries policières|fp; films de gangsters|mp; films d'espionnage|mp;
films d'action|mp; films de super-héros|mp; films de guerre|mp; films historiques|mp;
drames historiques|mp; films d'époque|mp; biopics|mp; documentaires|mp; documentaires animaliers|mp;
science-fiction|f; films de science-fiction|mp; space operas|mp; films de voyage dans le temps|mp;
films fantastiques|mp; fantasy|f; contes de fées|mp; dessins animés|mp; films d'animation|mp;
animés japonais|mp; films Disney|mp; films pour enfants|mp; trucs pour enfants|mp;
comédies musicales|fp; comédies romantiques|fp; histoires d'amour|fpv; films d'amour|mp;
films romantiques|mp; films à l'eau de rose|mp; mélodrames|mp; comédies|fp; comédies françaises|fp;
humour noir|mv; stand-up|m; sitcoms|fp; westerns|mp; films de cow-boys|mp; westerns spaghetti|mp;
séries médicales|fp; séries judiciaires|fp; feuilletons|mp; télé-réalité|f; émissions de cuisine|fp;
jeux télévisés|mp; dramas coréens|mp; films de Bollywood|mp; films d'auteur|mp;
films d'art et d'essai|mp; films lents|mp; cinéma d'auteur|m; films indépendants|mp;
vieux films en noir et blanc|mp; films muets|mp; classiques du cinéma|mp; navets|mp; suites|fp;
remakes|mp; séries interminables|fp; mini-séries|fp; films gore|mp; films de vampires|mp;
films de monstres|mp; films de kung-fu|mp; films catastrophe|mp; films de braquage|mp;
teen movies|mp; films de sport|mp; films d'arts martiaux|mp; cinéma coréen|m; cinéma italien|m;
nouvelle vague|f; films de Noël|mp; polars nordiques|mp; fins tristes|fp;
films où le chien meurt|mp;
Louis de Funès|Nm; Gérard Depardieu|Nm; Omar Sy|Nm; Audrey Tautou|Nf; Jean-Luc Godard|Nm;
Luc Besson|Nm; Christian Clavier|Nm; Marion Cotillard|Nf; Harry Potter|Nm; Star Wars|Nm;
Kaamelott|Nm; Astérix|Nm
""",
    "listen": """
jazz|m; jazz manouche|m; blues|m; rock|m; rock indé|m; punk|m; métal|m; heavy metal|m; hard rock|m;
pop|f; K-pop|f; rap|m; rap français|m; hip-hop|m; R&B|m; soul|f; funk|m; disco|m;
musique électronique|f; techno|f; house|f; musique classique|f; opéra|m; musique baroque|f;
piano|m; guitare acoustique|f; accordéon|m; musique country|f; folk|m; reggae|m; salsa|f;
chanson française|f; variété française|f; musiques de films|fp; musique d'ascenseur|f;
boys bands|mp; autotune|m; podcasts de true crime|mp; podcasts d'histoire|mp; livres audio|mp;
émissions de radio|fp; chansons d'amour|fp; ballades|fp
Céline Dion|Nf; Édith Piaf|Nf; Stromae|Nm; Aya Nakamura|Nf; Johnny Hallyday|Nm;
Serge Gainsbourg|Nm; Jacques Brel|Nm; Daft Punk|Nm; Indochine|Nm; Mylène Farmer|Nf; Angèle|Nf;
Jul|Nm; Orelsan|Nm
""",
    "read": """
romans policiers|mp; romans de fantasy|mp; romans d'amour|mp; romans historiques|mp;
bandes dessinées|fp; mangas|mp; poésie|f; livres de développement personnel|mp; biographies|fp;
romans russes|mp; grands classiques|mp; nouvelles|fp; livres de cuisine|mp; romans de gare|mp;
Victor Hugo|Nm; Amélie Nothomb|Nf; Marcel Proust|Nm; Michel Houellebecq|Nm; Tintin|Nm
""",
    "eat": """
sushis|mp; cuisine épicée|f; plats épicés|mp; cuisine thaïe|f; curry|m; fromages forts|mp;
fromage de chèvre|m; roquefort|m; escargots|mp; huîtres|fpv; fruits de mer|mp; champignons|mp;
olives|fp; anchois|mp; coriandre|f; ail|m; oignons|mp; choux de Bruxelles|mp; tofu|m; abats|mp;
foie gras|m; andouillette|f; chocolat noir|m; desserts|mp; pâtisseries|fp; croissants|mp;
raclette|f; fondue|f; pizza à l'ananas|f; fast-food|m; burgers|mp; ramen|mp; raviolis chinois|mp;
cuisine vegan|f; plats en sauce|mp
""",
    "drink": """
café|m; thé vert|m; vin rouge|m; vin nature|m; bière artisanale|f; whisky|m; cocktails|mp;
sodas|mp; boissons énergisantes|fp
""",
    "buy": """
chaussures de course|fp; claviers mécaniques|mp; bougies parfumées|fp;
casques à réduction de bruit|mp; montres connectées|fp; liseuses|fp; vinyles|mp;
appareils photo argentiques|mp; ordinateurs portables gaming|mp; friteuses sans huile|fp;
machines à expresso|fp; plantes d'intérieur|fp; stylos plume|mp; sacs à dos|mp;
matériel de camping|m; tapis de yoga|mp; trottinettes électriques|fp; vélos électriques|mp;
drones|mp; casques de réalité virtuelle|mp; parfums|mp; gadgets de cuisine|mp
""",
    "wear": """
baskets|fp; talons hauts|mp; jeans slim|mp; sweats à capuche|mp; vestes en cuir|fp;
pulls en laine|mp; vêtements vintage|mp; marques de luxe|fp; fast fashion|f; couleurs fluo|fp;
imprimés fleuris|mp; bijoux|mp
""",
    "play": """
jeux vidéo|mp; RPG|mp; jeux de rôle|mp; jeux de tir|mp; jeux de stratégie|mp; jeux de plateforme|mp;
jeux d'horreur|mp; jeux de course|mp; jeux de combat|mp; jeux mobiles|mp; jeux de société|mp;
échecs|mp; poker|m; mots croisés|mp; sudoku|m; escape games|mp; Minecraft|Nm; Pokémon|Nm
""",
    "do": """
football|m; basket|m; tennis|m; golf|m; rugby|m; Formule 1|f; cyclisme|m; boxe|f; MMA|m;
catch|m; Jeux olympiques|mp; patinage artistique|m; ski|m; surf|m; e-sport|mv; pétanque|f;
vacances à la plage|fp; croisières|fp; road trips|mp; randonnée|f; camping|m; musées|mp;
visites guidées|fp; parcs d'attractions|mp; clubs de vacances|mp; longs vols|mp;
endroits bondés|mp; boîtes de nuit|fp; karaoké|m; concerts|mp; festivals|mp; yoga|m;
jardinage|m; pêche|f; tricot|m
""",
}
_FR_COMBO = ({"films": "m", "comédies": "f", "drames": "m", "thrillers": "m", "séries": "f",
              "dessins animés": "m", "westerns": "m", "documentaires": "m", "polars": "m"},
             [("coréens", "coréennes"), ("japonais", "japonaises"), ("lents", "lentes"),
              ("français", "françaises"), ("italiens", "italiennes"), ("anglais", "anglaises"),
              ("déprimants", "déprimantes"), ("cultes", "cultes"),
              ("indépendants", "indépendantes"),
              ("des années 80", "des années 80"), ("en noir et blanc", "en noir et blanc"),
              ("à petit budget", "à petit budget"), ("pour ados", "pour ados"),
              ("trop longs", "trop longues"), ("violents", "violentes"), ("nuls", "nulles")])

_ZH_TOPICS = {
    "watch": """
恐怖片; 惊悚片; 悬疑片; 悬疑电影; 推理片; 侦探片; 犯罪片; 警匪片; 黑帮片; 谍战片; 动作片; 武侠片;
功夫片; 超级英雄电影; 漫威电影; 灾难片; 战争片; 历史剧; 古装剧; 宫斗剧; 传记片; 纪录片; 自然纪录片;
科幻片; 科幻电影; 太空歌剧; 穿越剧; 奇幻片; 魔幻电影; 童话故事; 动画片; 动画电影; 日本动漫; 二次元;
迪士尼电影; 宫崎骏的动画; 儿童片; 歌舞片; 音乐剧; 爱情片; 爱情电影; 浪漫喜剧; 偶像剧; 狗血剧;
苦情戏; 喜剧片; 喜剧; 无厘头喜剧; 情景喜剧; 脱口秀; 相声; 小品; 西部片; 牛仔片; 医疗剧; 律政剧;
肥皂剧; 真人秀; 恋爱综艺; 美食节目; 综艺节目; 韩剧; 日剧; 美剧; 英剧; 泰剧; 港片; 宝莱坞电影;
文艺片; 节奏慢的文艺片; 独立电影; 黑白老电影; 默片; 老电影; 经典老片; 邪典电影; 烂片; 续集;
翻拍片; 长篇连续剧; 短剧; 丧尸片; 鬼片; 吸血鬼电影; 怪兽片; 血腥暴力的片子; 虐心的剧;
结局悲惨的电影; 青春片; 校园剧; 体育电影; 法庭剧; 政治惊悚片; 末日题材; 赛博朋克; 甜宠剧; 仙侠剧;
刑侦剧; 国产剧; 家庭伦理剧; 网剧; 足球; 篮球; NBA; 乒乓球; 羽毛球; 网球; 排球; F1; 拳击;
综合格斗; 奥运会; 花样滑冰; 电竞比赛; 马拉松
周星驰; 成龙; 王家卫; 张艺谋; 李安; 宫崎骏; 周润发; 巩俐
流浪地球|T; 甄嬛传|T; 泰坦尼克号|T; 哈利·波特|T; 霸王别姬|T; 西游记|T
""",
    "listen": """
爵士乐; 蓝调; 摇滚; 朋克; 重金属; 金属乐; 流行音乐; 华语流行; K-pop; 日系音乐; 嘻哈; 说唱; R&B;
电子音乐; 电音; 古典音乐; 歌剧; 钢琴曲; 民谣; 乡村音乐; 雷鬼; 古风歌曲; 京剧; 越剧; 网络神曲;
抖音神曲; 广场舞音乐; 轻音乐; 纯音乐; 电影原声; 游戏配乐; 二胡; 古筝; 唢呐; 儿歌; 情歌; 播客;
有声书; 历史类播客; 真实犯罪播客
周杰伦; 林俊杰; 邓紫棋; 陈奕迅; 王菲; 五月天; 邓丽君; Taylor Swift
""",
    "read": """
武侠小说; 言情小说; 网络小说; 推理小说; 科幻小说; 玄幻小说; 历史小说; 诗歌; 散文; 漫画; 绘本;
鸡汤书; 成功学的书; 传记; 哲学书; 名著; 侦探小说; 恐怖小说
金庸; 刘慈欣; 鲁迅; 村上春树; 东野圭吾; 张爱玲
三体|T; 红楼梦|T; 平凡的世界|T
""",
    "eat": """
香菜; 榴莲; 臭豆腐; 辣的东西; 川菜; 湘菜; 粤菜; 火锅; 麻辣烫; 烧烤; 寿司; 生鱼片; 海鲜; 内脏;
螺蛳粉; 甜食; 甜点; 巧克力; 冰淇淋; 快餐; 炸鸡; 披萨; 汉堡; 饺子; 小笼包; 面条; 米粉; 苦瓜; 芹菜;
大蒜; 肥肉; 羊肉; 西兰花; 素食; 日料; 西餐
""",
    "drink": "奶茶; 咖啡; 黑咖啡; 绿茶; 啤酒; 精酿啤酒; 白酒; 红酒; 可乐; 气泡水",
    "buy": """
机械键盘; 降噪耳机; 跑鞋; 香薰蜡烛; 智能手表; 运动手环; 电子书阅读器; 黑胶唱片; 胶片相机; 微单相机;
游戏本; 平板电脑; 智能音箱; 空气炸锅; 咖啡机; 厨房小家电; 人体工学椅; 升降桌; 多肉植物; 钢笔;
双肩包; 露营装备; 瑜伽垫; 电动滑板车; 无人机; VR眼镜; 护肤品; 香水; 口红; 盲盒; 手办; 扫地机器人
""",
    "wear": """
运动鞋; 高跟鞋; 紧身牛仔裤; 卫衣; 皮夹克; 汉服; 旗袍; 西装; 花衬衫; 荧光色的衣服; 大logo的衣服;
复古衣服; 快时尚
""",
    "play": """
电子游戏; 手游; 网游; 角色扮演游戏; 射击游戏; 策略游戏; 解谜游戏; 恐怖游戏; 赛车游戏; 格斗游戏;
吃鸡; 王者荣耀; 原神; 我的世界; 桌游; 剧本杀; 狼人杀; 密室逃脱; 象棋; 围棋; 麻将; 扑克; 斗地主
""",
    "do": """
海岛游; 跟团游; 自驾游; 徒步; 露营; 博物馆; 美术馆; 主题乐园; 迪士尼乐园; 网红打卡点; 人多的景点;
夜店; KTV; 演唱会; 音乐节; 健身房; 广场舞; 钓鱼
""",
}
_ZH_COMBO = {
    "watch": ("韩国 日本 美国 国产 欧美 老 经典 小众 低成本 烧脑 慢节奏的 暗黑系 "
              "治愈系 血腥的 无脑的 "
              "搞笑的 高分 冷门 好莱坞 港台",
              "电影; 电视剧; 惊悚片; 动作片; 喜剧; 动画; 纪录片; 恐怖片; 科幻片; 悬疑剧; 爱情片"),
    "listen": ("欧美 日韩 老 小众 安静的 吵闹的 伤感的 欢快的", "音乐; 摇滚; 说唱; 民谣; 歌"),
    "eat": ("太辣的 太甜的 油腻的 生的 重口味的", "菜; 零食; 小吃"),
    "play": ("氪金 单机 联机 休闲 硬核", "游戏; 手游"),
}

_ES_TOPICS = {
    "watch": """
películas de terror|fp; comedias|fp; comedias románticas|fp; dramas|mp; thrillers|mp;
documentales|mp; películas de acción|fp; dibujos animados|mp; series policiacas|fp;
telenovelas|fp; realities|mp; películas de ciencia ficción|fp; westerns|mp; musicales|mp;
cine de autor|m; cine mudo|m; anime|m; películas de zombis|fp; películas de guerra|fp;
películas de misterio|fp; historias de amor|fp; fútbol|m; baloncesto|m; tenis|m; Fórmula 1|f
""",
    "listen": """
jazz|m; reguetón|m; rock|m; heavy metal|m; pop|m; flamenco|m; salsa|f; música clásica|f;
ópera|f; rap|m; cumbia|f; bachata|f; música electrónica|f; baladas|fp; podcasts|mp
""",
    "read": "novelas policiacas|fp; novelas románticas|fp; cómics|mp; poesía|f; "
            "libros de autoayuda|mp",
    "eat": """
comida picante|f; sushi|m; cilantro|m; mariscos|mp; paella|f; tacos|mp; comida rápida|f;
aceitunas|fp; pulpo|m; chocolate negro|m; postres|mp
""",
    "buy": "zapatillas de correr|fp; teclados mecánicos|mp; velas aromáticas|fp; auriculares|mp",
    "play": "videojuegos|mp; juegos de mesa|mp; juegos de disparos|mp; ajedrez|m",
    "do": "cruceros|mp; museos|mp; playas llenas de gente|fp; senderismo|m; discotecas|fp",
}

_DE_TOPICS = {
    "watch": """
Horrorfilme|p; Krimis|p; Thriller|p; Liebesfilme|p; Liebeskomödien|p; Komödien|p; Actionfilme|p;
Dokumentarfilme|p; Zeichentrickfilme|p; Animes|p; Western|p; Musicals|p; Science-Fiction|f;
Fantasy|f; Reality-Shows|p; Kriegsfilme|p; Arthouse-Filme|p; Stummfilme|p; Seifenopern|p;
Zombiefilme|p; Superheldenfilme|p; Tatort|m; Fußball|m; Formel 1|f; Tennis|n
""",
    "listen": """
Jazz|m; Schlager|m; Heavy Metal|m; Techno|m; Rockmusik|f; Popmusik|f; Rap|m; Klassik|f; Oper|f;
Volksmusik|f; Punk|m; Hörbücher|p; Podcasts|p
""",
    "read": "Krimis|p; Fantasyromane|p; Liebesromane|p; Comics|p; Gedichte|p; Ratgeber|p",
    "eat": """
scharfes Essen|n; Sushi|n; Sauerkraut|n; Rosenkohl|m; Meeresfrüchte|p; Fast Food|n;
Koriander|m; Süßigkeiten|p; Leberwurst|f; Pilze|p
""",
    "buy": "Laufschuhe|p; mechanische Tastaturen|p; Duftkerzen|p; Kopfhörer|p; Smartwatches|p",
    "play": "Videospiele|p; Brettspiele|p; Ego-Shooter|p; Schach|n; Strategiespiele|p",
    "do": "Kreuzfahrten|p; Museen|p; Wanderungen|p; Pauschalreisen|p; Clubs|p",
}

# Topics of the public probe's meaning: never a liked mystery with a disliked romance in one text.
_MYSTERY = frozenset("""mystery films|mystery movies|mysteries|whodunits|murder mysteries|
detective shows|detective stories|detective novels|cozy mysteries|films de mystère|
enquêtes policières|悬疑片|悬疑电影|推理片|侦探片|推理小说|侦探小说|悬疑剧|películas de misterio|
Krimis""".lower().replace("\n", "").split("|"))
_ROMANCE = frozenset("""romance|romance films|romantic movies|love stories|romantic comedies|
rom-coms|sappy love stories|romance novels|romances|chick flicks|comédies romantiques|
histoires d'amour|films d'amour|films romantiques|films à l'eau de rose|romans d'amour|爱情片|
爱情电影|浪漫喜剧|言情小说|偶像剧|甜宠剧|comedias románticas|historias de amor|
novelas románticas|Liebesfilme|Liebeskomödien|Liebesromane""".lower().replace("\n", "").split("|"))


@dataclass(frozen=True)
class _Topic:
    text: str
    kind: str
    plural: bool = False
    gender: str = ""  # "m" / "f" / "n" where the language needs it
    proper: bool = False  # a name or title: no article, never lowercased at a clause start
    vowel: bool = False  # French elision (l', d')
    pron: str = ""  # English pronoun for a person: him / her
    pre: str = ""  # decoration outside the span (《)
    post: str = ""


_FR_VOWELS = "aeiouyàâäéèêëîïôöûüæœAEIOUYÀÂÄÉÈÊËÎÏÔÖÛÜÆŒ"


def _entries(block: str) -> list[tuple[str, str]]:
    out = []
    for raw in re.split(r"[;\n]", block):
        raw = raw.strip()
        if raw:
            text, _, feats = raw.partition("|")
            out.append((text.strip(), feats.strip()))
    return out


def _parse_topic(lang: str, kind: str, text: str, feats: str) -> _Topic:
    if lang == "en":
        if feats in ("m", "f"):
            return _Topic(text, kind, proper=True, pron="him" if feats == "m" else "her")
        if feats == "t":
            return _Topic(text, kind, proper=True)
        if feats == "N":
            return _Topic(text, kind, plural=True, proper=True)
        plural = feats == "+" or (feats != "!" and text.endswith("s"))
        return _Topic(text, kind, plural=plural, proper=text[:1].isupper())
    if lang in ("fr", "es"):
        proper = feats.startswith("N")
        return _Topic(text, kind, plural="p" in feats, gender="f" if "f" in feats else "m",
                      proper=proper or text[:1].isupper(),
                      vowel="v" in feats or text[:1] in _FR_VOWELS)
    if lang == "de":
        return _Topic(text, kind, plural="p" in feats, gender=(feats or "p")[0], proper=True)
    if feats == "T":
        return _Topic(text, kind, proper=True, pre="《", post="》")
    return _Topic(text, kind)


def _build_topics(lang: str, table: dict[str, str]) -> dict[str, tuple[_Topic, ...]]:
    return {kind: tuple(_parse_topic(lang, kind, t, f) for t, f in _entries(block))
            for kind, block in table.items()}


_TOPICS: dict[str, dict[str, tuple[_Topic, ...]]] = {
    "en": _build_topics("en", _EN_TOPICS), "fr": _build_topics("fr", _FR_TOPICS),
    "zh": _build_topics("zh", _ZH_TOPICS), "es": _build_topics("es", _ES_TOPICS),
    "de": _build_topics("de", _DE_TOPICS),
}
_KIND_WEIGHTS = {"watch": 0.36, "listen": 0.15, "read": 0.09, "eat": 0.1, "drink": 0.04,
                 "play": 0.08, "buy": 0.08, "wear": 0.04, "do": 0.06}

# --------------------------------------------------------------------------------------------
# Templates. "{0}" is a slot (a thing, or a list of things sharing the slot's label);
# "{le:0}" asks for a form with an article (fr: le/de/au/du, es: el/de/del/al). "<x>" or "<x:1>"
# agrees with slot 0 (or 1): en <is> <was> <it> <s> <does> <has> <V> <Ving> <Ved>; fr <nt> <est>
# <fait> <le>; es <n> <es>; de <sind> <en> <kein>; zh <V> <good>. Single-slot templates are
# grouped by label; pair templates carry one label per slot after " | ".
# --------------------------------------------------------------------------------------------


def _block(label: Label, text: str) -> list[tuple[str, Label]]:
    return [(line.strip(), label) for line in text.strip().split("\n") if line.strip()]


_CODES = {"L10": L10, "L8": L8, "L6": L6, "L5": L5, "D10": D10, "D8": D8, "D6": D6}


def _pairs(text: str) -> list[tuple[str, tuple[Label, ...]]]:
    out = []
    for line in text.strip().split("\n"):
        pattern, _, codes = line.rpartition(" | ")
        out.append((pattern.strip(), tuple(_CODES[c] for c in codes.split())))
    return out


_EN_SINGLE = _block(L10, """
I love {0}
I really love {0}
I absolutely love {0}
I adore {0}
I'm obsessed with {0}
I'm crazy about {0}
I can't get enough of {0}
I'm a sucker for {0}
I'm a huge fan of {0}
I live for {0}
Nothing beats {0}
{0} all day, every day
{0}? Love <it>
{0}? Yes please!
{0} <is> life
{0} <is> the best
{0} <is> my favourite thing ever
{0} never get<s> old
I never get tired of {0}
I never say no to {0}
You can never have enough {0}
No wonder I love {0}
I used to hate {0} but now I love <it>
I thought I'd hate {0} but I love <it>
I'm head over heels for {0}
{0}, always
Give me {0} any day of the week
I could <V> {0} all day
I will never get bored of {0}
Big yes to {0}
{0} <is> everything
{0} for life
{0} make<s> me so happy
I'm all about {0}
Can't live without {0}
{0} <is> my happy place
I <Ved> {0} last night and loved <it>
My son adores {0}
My wife loves {0}
Honestly, {0} <is> perfection
""") + _block(L8, """
I like {0}
I really like {0}
I enjoy {0}
I'm into {0}
I'm really into {0}
I'm a fan of {0}
I'm partial to {0}
I'm fond of {0}
I'm keen on {0}
I've always liked {0}
I tend to like {0}
I'm in the mood for {0}
I'm looking for {0}
Looking for some {0}
Recommend me some {0}
Any good {0}?
Got any good {0}?
Do you have more {0}?
More {0} please
More {0}
{0} please!
Give me {0}
Show me {0}
Yes to {0}
Here's what I like: {0}
{0} <is> right up my alley
{0} <is> my jam
{0} <is> my thing
{0} <is> my cup of tea
{0} <is> great
{0} <is> pretty good
{0} <is> always a good idea
{0} never disappoint<s>
{0} <is>n't bad at all
I'd never turn down {0}
Something like {0}, please
I have a soft spot for {0}
I've got a weakness for {0}
{0} hit<s> the spot
Count me in for {0}
I'm always up for {0}
Anything with {0} is a yes from me
{0}? Sign me up
Guilty pleasure: {0}
{0} <is> my go-to
I dig {0}
{0} rock<s>
{0} <is> so good
I keep coming back to {0}
I'm down for {0}
Lately I've been getting into {0}
My kids are really into {0}
We all like {0} in this house
I usually go for {0}
I'd happily <V> {0}
""") + _block(L6, """
I don't mind {0}
I don't hate {0}
{0} <is> not bad
{0} <is> okay I guess
I guess {0} <is> ok
{0} <is> fine
{0} <is> fine, I suppose
I can tolerate {0}
I can put up with {0}
I wouldn't say no to {0}
{0} could be fun
I'm open to {0}
Maybe some {0}?
{0} <is> alright
I'm kind of into {0}
I sort of like {0}
{0} can be nice sometimes
I wouldn't mind some {0}
{0} <is> decent
I can't say I dislike {0}
{0} <is> growing on me
I'm warming up to {0}
Not opposed to {0}
Occasionally I'll <V> {0}
""") + _block(D10, """
I hate {0}
I really hate {0}
I absolutely hate {0}
I can't stand {0}
I cannot stand {0}
I loathe {0}
I detest {0}
I despise {0}
I never <V> {0}
Never {0}
{0}? Never again
{0}? Absolutely not
{0}? Hell no
Anything but {0}
I'll <V> anything but {0}
I'd rather watch paint dry than <V> {0}
{0} <is> the worst
{0} make<s> me want to scream
{0} <is> a hard pass
Hard pass on {0}
Hard no on {0}
Keep {0} away from me
{0} <is> my nightmare
I can't bear {0}
Nothing with {0}, ever
{0} drive<s> me up the wall
{0} <is> unbearable
I'm sick to death of {0}
I used to love {0} but now I can't stand <it>
{0}? Over my dead body
{0} make<s> me gag
I will never <V> {0} again
Zero interest in {0}
I'd sooner eat glass than <V> {0}
I have no patience for {0}
My husband hates {0}
My kids can't stand {0}
""") + _block(D8, """
I don't like {0}
I do not like {0}
I dislike {0}
I avoid {0}
I tend to avoid {0}
No {0}
No {0} please
No more {0}
Please no {0}
Skip {0}
Nothing with {0} please
Don't show me {0}
Don't recommend {0}
Stop recommending {0}
I'm tired of {0}
I'm sick of {0}
I'm done with {0}
I'm over {0}
{0}? Count me out
Count me out of {0}
{0} <is> a no from me
Anything with {0} is a no from me
{0} <is> not my cup of tea
{0} <is> not for me
{0} <is>n't my thing
{0} make<s> me cringe
{0}? Ugh
{0}? Nope
Nope, not {0}
I stay away from {0}
I steer clear of {0}
I'd rather not <V> {0}
I don't want {0}
I don't <V> {0}
{0} <is> off the table
{0} <is> a dealbreaker
{0} turn<s> me off
I never liked {0}
I've never been into {0}
{0} just <is>n't for me
Everything except {0}
I like everything except {0}
As long as it's not {0}
Whatever you do, no {0}
{0} get<s> on my nerves
{0}? Pass
Pass on {0}
I've had enough of {0}
Spare me {0}
I'm allergic to {0}
I've gone off {0}
{0} used to be my thing, not anymore
""") + _block(D6, """
I'm not a big fan of {0}
I'm not really into {0}
I'm not into {0}
{0} bore<s> me
{0} leave<s> me cold
{0} put<s> me to sleep
{0} <is>n't really my thing
I could live without {0}
I can take or leave {0}
{0}, meh
Meh on {0}
{0} <is> a bit much for me
{0} get<s> old fast
I'm not crazy about {0}
I'm not that keen on {0}
I don't really care for {0}
{0} <does>n't do much for me
{0} <does>n't really grab me
I find {0} a bit boring
I'm lukewarm on {0}
{0} <is> overrated
Why does everyone love {0}?
I don't get the hype around {0}
Less {0}, please
I'm kind of over {0}
Everyone says {0} <is> great, but I don't get it
""")

_EN_PAIRS = _pairs("""
I prefer {0} to {1} | L8 D6
I'd take {0} over {1} | L8 D6
{0} over {1} any day | L8 D6
{0} > {1} | L8 D6
{0} beat<s> {1} every time | L8 D6
I'd rather <V> {0} than {1} | L8 D6
Rather {0} than {1} | L8 D6
Why <V:1> {1} when you can <V> {0}? | L8 D6
Give me {0}, not {1} | L8 D8
Not {0}, {1} | D8 L8
{0}, not {1} | L8 D8
I like {0} but not {1} | L8 D8
I love {0} but I hate {1} | L10 D10
I love {0}, just not {1} | L10 D8
I'm into {0}, though {1} bore<s:1> me | L8 D6
I like {0}, though {1} <is:1> not my thing | L8 D8
{0} yes, {1} no | L8 D8
{0}, sure. {1}, not so much | L8 D6
Less {0}, more {1} | D6 L8
More {0}, less {1} | L8 D6
Forget {0}, give me {1} | D8 L8
Not a fan of {0}, but {1} <is:1> great | D6 L8
I can't stand {0}, but I adore {1} | D10 L10
{0} bore<s> me, but {1} never get<s:1> old | D6 L10
{0} <is> fine, but {1} <is:1> better | L6 L8
Neither {0} nor {1} for me | D8 D8
{0}? Love <it>. {1}? Not so much | L10 D6
{0} or {1}, as long as it's not {2} | L8 L8 D8
Anything with {0}, except {1} | L8 D8
Swap {0} for {1}, please | D8 L8
Instead of {0}, show me {1} | D8 L8
{0} instead of {1}, please | L8 D8
Sure, {0} <is> great, but {1}? Never | L8 D10
I'm all for {0}; {1}, not really | L8 D6
I don't hate {0}, but I'd pick {1} over <it> | L6 L8
""")

_FR_SINGLE = _block(L10, """
J'adore {le:0}
J'aime trop {le:0}
Je suis accro {au:0}
Je raffole {du:0}
Je suis fou {de:0}
Je suis une grande fan {de:0}
Je suis un inconditionnel {du:0}
{le:0}, j'adore
{le:0}, c'est ma passion
{le:0}, c'est la vie
Rien ne vaut {le:0}
Je ne me lasse jamais {du:0}
Je ne dis jamais non {au:0}
Vive {le:0} !
Pas étonnant que j'adore {le:0}
{le:0}, j'en redemande
{le:0} à fond !
{le:0}, je ne m'en lasse pas
{le:0}, trop bien !
Mon fils adore {le:0}
Mes enfants adorent {le:0}
Avant je détestais {le:0}, maintenant j'adore
""") + _block(L8, """
J'aime {le:0}
J'aime bien {le:0}
J'aime beaucoup {le:0}
J'apprécie {le:0}
Je kiffe {le:0}
J'ai un faible pour {le:0}
{le:0}, c'est mon truc
{le:0}, c'est top
{le:0}, c'est génial
Je cherche {du:0}
Tu as {du:0} à me conseiller ?
Plus {de:0}, s'il vous plaît
Encore {du:0} !
Je veux {du:0}
Montre-moi {du:0}
Je suis plutôt {0}
Oui {au:0} !
{le:0}, c'est tout à fait mon style
{le:0}, ça me parle
J'ai toujours aimé {le:0}
Je me régale avec {le:0}
{le:0} ? Je dis oui !
{le:0}, c'est mon péché mignon
Je suis fan {de:0}
Ma femme aime beaucoup {le:0}
Des recommandations {de:0} ?
{le:0}, ça ne déçoit jamais
""") + _block(L6, """
{le:0}, c'est pas mal
{le:0}, c'est pas mal du tout
Je ne déteste pas {le:0}
Ça ne me dérange pas, {le:0}
{le:0}, ça passe
{le:0}, ça peut être sympa
Je veux bien {du:0}
Je ne dirais pas non à {du:0}
Pourquoi pas {du:0}
Je tolère {le:0}
{le:0}, pourquoi pas
""") + _block(D10, """
Je déteste {le:0}
J'ai horreur {du:0}
Je ne supporte pas {le:0}
Je hais {le:0}
J'exècre {le:0}
Jamais {de:0} !
{le:0} ? Jamais de la vie
{le:0} ? Plus jamais
Tout sauf {le:0}
Surtout pas {de:0}
{le:0}, c'est non
{le:0}, c'est l'enfer
{le:0}, beurk
{le:0}, c'est nul
{le:0}, quelle horreur
Je ne peux pas voir {le:0} en peinture
J'adorais {le:0} mais maintenant je ne <le> supporte plus
Je n'aime pas du tout {le:0}
Mon mari déteste {le:0}
""") + _block(D8, """
Je n'aime pas {le:0}
J'aime pas {le:0}
Pas {de:0}
Pas {de:0}, merci
Pas {de:0} pour moi
J'évite {le:0}
Je fuis {le:0}
{le:0}, ce n'est pas pour moi
{le:0}, c'est pas mon truc
{le:0}, ce n'est pas ma tasse de thé
{le:0} ? Sans moi
{le:0}, je passe
{le:0}, non merci
{le:0}, très peu pour moi
Non {au:0}
Je ne veux pas {de:0}
Ne me propose pas {de:0}
Arrête de me proposer {du:0}
Je suis allergique {au:0}
J'en ai marre {du:0}
J'en ai assez {du:0}
Je n'ai jamais aimé {le:0}
{le:0}, c'est rédhibitoire
{le:0}, ça me saoule
{le:0}, ça me gonfle
{le:0} me <fait> grincer des dents
""") + _block(D6, """
Je ne suis pas fan {de:0}
{le:0}, bof
{le:0} m'ennuie<nt>
{le:0} me laisse<nt> froid
{le:0}, ça m'endort
Je ne suis pas très {0}
Je ne suis pas vraiment fan {de:0}
{le:0}, très moyen pour moi
Je n'accroche pas {au:0}
{le:0}, je trouve ça surfait
Pourquoi tout le monde aime {le:0} ?
Moins {de:0}, s'il te plaît
""")

_FR_PAIRS = _pairs("""
Je préfère {le:0} {au:1} | L8 D6
Plutôt {le:0} que {le:1} | L8 D6
J'aime {le:0} mais pas {le:1} | L8 D8
J'adore {le:0} mais je déteste {le:1} | L10 D10
{le:0} oui, {le:1} non | L8 D8
Oui {au:0}, non {au:1} | L8 D8
Je n'aime ni {le:0} ni {le:1} | D8 D8
Moins {de:0}, plus {de:1} | D6 L8
Pas {de:0}, plutôt {du:1} | D8 L8
{le:0}, ça m'ennuie, mais {le:1}, j'adore | D6 L10
Je ne supporte pas {le:0}, par contre j'adore {le:1} | D10 L10
{le:0} plutôt que {le:1} | L8 D6
Je suis plus {0} que {1} | L8 D6
Remplace {le:0} par {du:1} | D8 L8
Au lieu {du:0}, propose-moi {du:1} | D8 L8
{le:0}, ça va, mais {le:1}, c'est mieux | L6 L8
""")

_ZH_SINGLE = _block(L10, """
我爱{0}
我超爱{0}
我最爱{0}了
我特别喜欢{0}
我非常喜欢{0}
超喜欢{0}
我超级喜欢{0}
{0}是我的最爱
我对{0}情有独钟
{0}百<V>不厌
{0}永远的神
{0}yyds
我对{0}毫无抵抗力
我是{0}的忠实粉丝
我迷上了{0}
我沉迷{0}
{0}怎么<V>都不腻
{0}太对我胃口了
谁不爱{0}呢
难怪我这么喜欢{0}
以前讨厌{0}，现在超爱
{0}绝了
我儿子特别喜欢{0}
我女儿超爱{0}
{0}真的太棒了
我可以一直<V>{0}
爱死{0}了
{0}是我的心头好
我从不拒绝{0}
""") + _block(L8, """
我喜欢{0}
我很喜欢{0}
喜欢{0}
我挺喜欢{0}的
我还挺喜欢{0}的
我爱<V>{0}
我比较喜欢{0}
我一直很喜欢{0}
从小就喜欢{0}
我对{0}很感兴趣
{0}是我的菜
{0}很合我胃口
{0}不错
{0}很不错
{0}挺好的
求推荐{0}
有没有<good>的{0}？
有什么<good>的{0}推荐吗？
多来点{0}
来点{0}吧
给我推{0}
想<V>{0}
最近在<V>{0}
{0}走起
{0}安排上
{0}可以多推一些
我偏爱{0}
平时喜欢<V>{0}
{0}我一直都喜欢
{0}？好啊
{0}从来不会让我失望
""") + _block(L6, """
我不介意{0}
{0}还行
{0}也还可以
{0}也行
{0}还不错
我不讨厌{0}
偶尔也会<V>{0}
{0}凑合
{0}可以试试
我不排斥{0}
{0}也没那么差
{0}其实还可以
""") + _block(D10, """
我讨厌{0}
我很讨厌{0}
我最讨厌{0}了
我超讨厌{0}
我受不了{0}
我真的受不了{0}
我恨死{0}了
{0}一律不<V>
我绝对不<V>{0}
打死也不<V>{0}
我从来不<V>{0}
{0}是我的雷区
拒绝{0}
坚决不要{0}
千万别给我推{0}
{0}简直是折磨
以前很喜欢{0}，现在受不了了
什么都<V>，就是不<V>{0}
{0}？再也不<V>了
宁愿发呆也不<V>{0}
我老公特别讨厌{0}
我对{0}深恶痛绝
受够了{0}
别跟我提{0}
""") + _block(D8, """
我不喜欢{0}
不喜欢{0}
我不爱<V>{0}
我不想<V>{0}
不要{0}
别给我推{0}
别推荐{0}
不要再推{0}了
{0}就算了
{0}免了
{0}不要
{0}就不用了
{0}不是我的菜
{0}不合我胃口
{0}<V>不下去
我对{0}没兴趣
对{0}不感兴趣
{0}劝退
我对{0}敬而远之
{0}太无聊了
{0}？不了不了
{0}？算了吧
{0}？pass
除了{0}，什么都行
除了{0}都可以
我一直不喜欢{0}
{0}真心不行
怎么会有人喜欢{0}
{0}太尴尬了
{0}<V>腻了
""") + _block(D6, """
我不太喜欢{0}
不怎么喜欢{0}
我对{0}不太感冒
对{0}无感
{0}一般般
{0}没什么意思
{0}让我犯困
{0}有点无聊
{0}欣赏不来
{0}真的get不到
{0}不太适合我
{0}少推点
我对{0}兴趣不大
我很少<V>{0}
""")

_ZH_PAIRS = _pairs("""
比起{0}，我更喜欢{1} | D6 L8
比起{0}，更爱{1} | D6 L10
{0}比{1}<good>多了 | L8 D6
喜欢{0}，不喜欢{1} | L8 D8
{0}可以，{1}不行 | L6 D8
{0}还行，{1}就算了 | L6 D8
宁可<V>{0}也不<V:1>{1} | L8 D8
与其<V:1>{1}，不如<V>{0} | L8 D6
只<V>{0}，不<V:1>{1} | L8 D8
{0}<V>，{1}不<V:1> | L8 D8
爱<V>{0}，讨厌{1} | L10 D10
我喜欢{0}，但是受不了{1} | L8 D10
{0}和{1}都不喜欢 | D8 D8
{0}和{1}都爱 | L10 L10
不要{0}，要{1} | D8 L8
别推{0}了，多推点{1} | D8 L8
{0}太无聊了，还是{1}好 | D8 L8
我更喜欢{0}而不是{1} | L8 D6
""")

_ES_SINGLE = _block(L10, """
Me encanta<n> {el:0}
Adoro {el:0}
{el:0}, me encanta<n>
Me flipa<n> {el:0}
Soy adicto {al:0}
Mi hijo adora {el:0}
Nunca me canso {del:0}
""") + _block(L8, """
Me gusta<n> {el:0}
Soy fan {del:0}
Busco {0}
Más {0}, por favor
Me mola<n> {el:0}
¿Me recomiendas {0}?
""") + _block(L6, """
No me importa<n> {el:0}
{el:0} no está<n> mal
{el:0} <es> aceptable
""") + _block(D10, """
Odio {el:0}
No soporto {el:0}
No me gusta<n> nada {el:0}
{el:0}, ni hablar
Todo menos {el:0}
{el:0}? Nunca más
""") + _block(D8, """
No me gusta<n> {el:0}
Nada {de:0}
Sin {0}, por favor
{el:0}? Paso
Evito {el:0}
{el:0} no <es> lo mío
Estoy harto {del:0}
""") + _block(D6, """
{el:0} me aburre<n>
No soy muy fan {del:0}
""")

_ES_PAIRS = _pairs("""
Prefiero {el:0} {al:1} | L8 D6
Me encanta<n> {el:0}, pero odio {el:1} | L10 D10
{el:0} sí, {el:1} no | L8 D8
Mejor {0} que {1} | L8 D6
""")

_DE_SINGLE = _block(L10, """
Ich liebe {0}
Ich bin ein großer Fan von {0}
Ich kann nicht genug von {0} bekommen
{0}? Immer!
""") + _block(L8, """
Ich mag {0}
{0} <sind> super
{0} <sind> mein Ding
Ich stehe auf {0}
Mehr {0}, bitte
{0} geh<en> immer
""") + _block(L6, """
{0} finde ich gar nicht schlecht
{0} <sind> ganz okay
Ich hab nichts gegen {0}
""") + _block(D10, """
Ich hasse {0}
Ich kann {0} nicht ausstehen
Alles außer {0}
{0}? Niemals
{0} geh<en> gar nicht
""") + _block(D8, """
Ich mag {0} nicht
{0} mag ich nicht
Bitte <kein> {0}
{0}? Nein danke
{0} <sind> nichts für mich
Von {0} habe ich genug
""") + _block(D6, """
{0} langweil<en> mich
Ich bin kein großer Fan von {0}
""")

_DE_PAIRS = _pairs("""
Lieber {0} als {1} | L8 D6
Ich liebe {0}, aber ich hasse {1} | L10 D10
{0} ja, {1} nein | L8 D8
Ich mag {0}, aber <kein:1> {1} | L8 D8
""")

# Second round (families the dev errors showed thin): idiomatic dislikes said after the thing
# ("X is my idea of hell", "X are out", "X, never", "X? Only as a last resort"), "what I don't
# want is X", bare questions that ask for more of a thing (a like), "X yes but please no Y".
# Written fresh from the families, not from any dev text.
_EN_SINGLE = _EN_SINGLE + _block(L8, """
Know any good {0}?
Any {0} you'd recommend?
Seen any decent {0} lately?
Any {0} recs?
{0} recommendations?
Where can I find more {0}?
{0} <is> more my speed
{0} <is> more me
{0} <is> more my style
What I want is {0}
What I'm really after is {0}
{0} <is> my guilty pleasure
{0} forever
""") + _block(D10, """
{0} <is> my idea of hell
{0} <is> my idea of torture
{0} <is> my personal hell
{0}, never
{0}: never
{0}, not in a million years
{0}? Not a chance
{0}? No way
No {0}, ever
What I can't stand is {0}
The last thing I want is {0}
I avoid {0} like the plague
""") + _block(D8, """
{0} <is> out
So {0} <is> out
{0} <is> a no-go
{0} <is> off the list
Rule out {0}
Cross {0} off the list
I give {0} a wide berth
I keep well away from {0}
What I don't want is {0}
What I'm not after is {0}
None of those {0}
No {0} whatsoever
Leave out {0}
Hold the {0}
""") + _block(D6, """
{0} send<s> me to sleep
{0} <is> a snoozefest
{0} = instant nap
{0} make<s> me yawn
{0} <is> wasted on me
{0} <is> lost on me
{0} just <does>n't land with me
{0}? Only as a last resort
{0}? Only if I have no other choice
I'd only <V> {0} if I'd run out of everything else
""")
_EN_PAIRS = _EN_PAIRS + _pairs("""
{0} yes but PLEASE no {1} | L8 D8
{0} yes, but please, no {1} | L8 D8
{0} fine, just no {1} please | L6 D8
{0} sure, {1} never | L8 D10
{0} all day, {1} never | L10 D10
Loads of {0}, zero {1} | L8 D8
{0} <is> my guilty pleasure; {1} <is:1> my idea of hell | L8 D10
What I want is {0}; what I don't want is {1} | L8 D8
{0}? Always. {1}? Never | L10 D10
{0}, sure, but no {1} | L8 D8
""")
_FR_SINGLE = _FR_SINGLE + _block(L8, """
Des idées côté {0} ?
Vous auriez des conseils pour {le:0} ?
{le:0}, c'est davantage mon style
Ce que je veux, c'est {le:0}
""") + _block(D10, """
{le:0}, jamais
{le:0} ? Jamais de la vie
{le:0}, c'est mon cauchemar
Je fuis {le:0} comme la peste
""") + _block(D8, """
{le:0}, c'est exclu
{le:0}, on oublie
Ce que je ne veux pas, c'est {le:0}
Je me tiens loin {du:0}
Rayez {le:0} de la liste
""") + _block(D6, """
{le:0}, en dernier recours
{le:0}, à la rigueur, s'il n'y a vraiment rien d'autre
{le:0}, ça me donne envie de dormir
""")
_FR_PAIRS = _FR_PAIRS + _pairs("""
{le:0} oui, mais surtout pas {de:1} | L8 D8
{le:0}, toujours ; {le:1}, jamais | L10 D10
Ce que je veux, c'est {le:0}, pas {le:1} | L8 D8
""")
_ZH_SINGLE = _ZH_SINGLE + _block(L8, """
求推荐{0}
{0}有推荐吗？
{0}更对我胃口
我想要的是{0}
""") + _block(D10, """
{0}直接拉黑
{0}免谈
{0}绝对不行
{0}这辈子都不<V>
{0}？门都没有
""") + _block(D8, """
{0}就饶了我吧
{0}别来沾边
{0}一概跳过
我不想要的是{0}
{0}不考虑
""") + _block(D6, """
{0}除非实在没别的
{0}是催眠神器
{0}<V>着<V>着就睡着了
""")
_ZH_PAIRS = _ZH_PAIRS + _pairs("""
{0}可以，但千万别推{1} | L8 D8
{0}随便来，{1}免谈 | L8 D10
{0}永远可以，{1}永远不行 | L10 D10
""")
# Chatty context with names, places and things that are not preferences (no span): long
# descriptions carry such sentences, and a name or a place in them is not a like.
_CHAT = {
    "en": ["My cousin Priya is visiting from Manchester this week.",
           "We just got back from a trip to Lisbon.", "I'm learning Japanese at the moment.",
           "My flatmate Tom usually picks what we watch.",
           "It's for my dad, he's seventy and lives in Cork.",
           "I've got a cold and I'm stuck on the sofa.",
           "My girlfriend and I do a movie night every Friday.",
           "I work nights at a hospital in Leeds.",
           "We're hosting about twenty people on Saturday.",
           "Our baby finally sleeps through the night, so we have evenings again.",
           "I teach geography at a school in Ohio.", "Grandma Rosa is coming over on Sunday.",
           "I'm on a long train ride to Edinburgh tomorrow.",
           "My son Leo just turned nine."],
    "fr": ["Ma cousine Léa vient de Lyon ce week-end.", "On part à Marseille la semaine prochaine.",
           "J'apprends l'italien en ce moment.", "C'est pour mon père, il a soixante-dix ans.",
           "Mon coloc Julien choisit souvent le film.", "Je suis prof de maths à Lille.",
           "On organise une soirée chez Camille samedi.", "Je suis malade, coincée sur le canapé."],
    "zh": ["我表妹下周从成都来玩。", "我在上海上班，每天加班。", "最近在学日语。",
           "这是给我爸找的，他今年七十了。", "室友小王每晚都负责选片。", "周末要去杭州出差。",
           "我和女朋友每周五都有电影之夜。", "我感冒了，只能躺在沙发上。"],
}
_CHAT_P = 0.12

_SINGLE = {"en": _EN_SINGLE, "fr": _FR_SINGLE, "zh": _ZH_SINGLE, "es": _ES_SINGLE,
           "de": _DE_SINGLE}
_PAIR = {"en": _EN_PAIRS, "fr": _FR_PAIRS, "zh": _ZH_PAIRS, "es": _ES_PAIRS, "de": _DE_PAIRS}
SINGLE_TEMPLATES = _SINGLE
"""Per language: (pattern, (polarity, strength)) for templates naming one thing (or a list)."""
PAIR_TEMPLATES = _PAIR
"""Per language: (pattern, one label per slot) for templates naming things of mixed polarity."""
# A bare noun phrase or list with no marker: a like at 0.5.
_BARE = {"en": "{0}", "fr": "{0}", "zh": "{0}", "es": "{0}", "de": "{0}"}

# Texts with no preference: no topic, or a topic in a plain statement of fact.
_NEUTRAL = {
    "en": ["Hi!", "Hello there.", "Hey.", "Recommend me something.", "What should I watch tonight?",
           "Any suggestions?", "I need something for the weekend.", "Long day, need to relax.",
           "Okay, here goes.", "Thanks!", "Quick question.", "I'm new here.",
           "Surprise me.", "It's raining again."],
    "fr": ["Salut !", "Bonjour.", "Des idées ?", "Tu me conseilles quoi ce soir ?",
           "Merci d'avance.", "Je débarque ici.", "Longue journée.", "Surprends-moi."],
    "zh": ["你好！", "帮我推荐一下。", "今晚想找点东西看。", "说说我的口味吧。", "谢谢！",
           "有什么推荐吗？", "周末好无聊。", "随便推荐点吧。"],
    "es": ["¡Hola!", "¿Qué me recomiendas?", "Gracias.", "Sorpréndeme."],
    "de": ["Hallo!", "Was empfiehlst du mir?", "Danke.", "Überrasch mich."],
}
_NEUTRAL_TOPIC = {
    "en": ["I <Ved> {0} yesterday", "My friend was talking about {0}", "I read an article about "
           "{0}", "Is {0} popular these days?", "What's the difference between {0} and {1}?",
           "We talked about {0} at dinner", "My sister is writing an essay on {0}",
           "There's a shop selling {0} near my place"],
    "fr": ["Hier soir, on a parlé {du:0}", "C'est quoi la différence entre {le:0} et {le:1} ?",
           "Mon frère m'a parlé {du:0}", "J'ai lu un article sur {le:0}"],
    "zh": ["昨天看到有人在聊{0}", "{0}和{1}有什么区别？", "朋友最近在研究{0}", "{0}最近很火吗？",
           "我妹妹在写关于{0}的作业"],
    "es": ["Ayer hablamos {del:0}", "Mi hermano me habló {del:0}"],
    "de": ["Gestern haben wir über {0} geredet", "Mein Bruder erzählt oft von {0}"],
}
_FILLER_START = {
    "en": ["Honestly, ", "To be honest, ", "Hmm, ", "Well, ", "Okay so ", "lol ", "Also, ",
           "Tbh ", "So yeah, "],
    "fr": ["Franchement, ", "Honnêtement, ", "Bon, ", "Alors, ", "Bref, "],
    "zh": ["说实话，", "老实说，", "嗯，", "其实", "反正"],
    "es": ["Sinceramente, ", "Bueno, "],
    "de": ["Ehrlich gesagt, ", "Also, "],
}
_FILLER_END = {"en": [" tbh", " lol", " haha", " honestly"], "fr": [" franchement", " mdr"],
               "zh": ["哈哈", "吧", "啊"], "es": [" jaja"], "de": [" ehrlich"]}
_EMOJI = {POS: ["😍", "❤️", "🔥", "👍", "🥰", "💯", "🙌", "✨", "😊"],
          NEG: ["🙄", "👎", "🤮", "😴", "😒", "🚫", "💀", "😬", "🙅"]}

# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------

_TOKEN = re.compile(r"\{(?:(\w+):)?(\d)\}|<([^<>:]+)(?::(\d))?>")
_NEGATED = {
    "en": re.compile(r"n't|\bnot\b|\bnever\b|\bno\b|\bnor\b|\bbut\b|\bexcept\b", re.I),
    "fr": re.compile(r"\bpas\b|\bjamais\b|\bsauf\b|\bni\b|\bsans\b|n'|\bnon\b", re.I),
    "zh": re.compile(r"$^"),
    "es": re.compile(r"\bno\b|\bnunca\b|\bni\b|\bnada\b|\bsin\b|\bmenos\b", re.I),
    "de": re.compile(r"\bnicht\b|\bkein|\bnie|\baußer\b", re.I),
}
_CONJ = {"en": (" and ", " or "), "fr": (" et ", " ou "), "zh": ("和", "和"), "es": (" y ", " o "),
         "de": (" und ", " oder ")}
_LIST_SEP = {"en": ", ", "fr": ", ", "zh": "、", "es": ", ", "de": ", "}
_EN_VERB = {"watch": ("watch", "watching", "watched"),
            "listen": ("listen to", "listening to", "listened to"),
            "read": ("read", "reading", "read"), "eat": ("eat", "eating", "had"),
            "drink": ("drink", "drinking", "had"), "play": ("play", "playing", "played"),
            "buy": ("buy", "buying", "bought"), "wear": ("wear", "wearing", "wore"),
            "do": ("do", "doing", "did")}
_ZH_VERB = {"watch": "看", "listen": "听", "read": "看", "eat": "吃", "drink": "喝", "play": "玩",
            "buy": "买", "wear": "穿", "do": "去"}
_ZH_GOOD = {"watch": "好看", "listen": "好听", "read": "好看", "eat": "好吃", "drink": "好喝",
            "play": "好玩", "buy": "好用", "wear": "好看", "do": "好玩"}

Seg = tuple[str, "Label | None", bool]  # (text, label of a span or None, proper)


def _article(lang: str, form: str, t: _Topic) -> str:
    if not form:
        return ""
    if lang == "fr":
        if t.proper:
            if form in ("de", "du"):
                return "d'" if t.vowel else "de "
            return "à " if form == "au" else ""
        if form == "de":
            return "d'" if t.vowel else "de "
        if t.plural:
            return {"le": "les ", "au": "aux ", "du": "des "}[form]
        if t.vowel:
            return {"le": "l'", "au": "à l'", "du": "de l'"}[form]
        fem = t.gender == "f"
        return {"le": "la " if fem else "le ", "au": "à la " if fem else "au ",
                "du": "de la " if fem else "du "}[form]
    if lang == "es":
        if t.proper:
            return {"el": "", "de": "de ", "del": "de ", "al": "a "}[form]
        art = ("las" if t.gender == "f" else "los") if t.plural else \
              ("la" if t.gender == "f" else "el")
        if form == "el":
            return art + " "
        if form == "de":
            return "de "
        if form == "del":
            return "del " if art == "el" else f"de {art} "
        return "al " if art == "el" else f"a {art} "
    return ""


def _agree(lang: str, name: str, items: list[_Topic]) -> str:
    plural = len(items) > 1 or items[0].plural
    t = items[0]
    if lang == "en":
        if name == "V":
            return _EN_VERB[t.kind][0]
        if name == "Ving":
            return _EN_VERB[t.kind][1]
        if name == "Ved":
            return _EN_VERB[t.kind][2]
        if name == "it":
            return "them" if plural else (t.pron or "it")
        table = {"is": ("are", "is"), "was": ("were", "was"), "s": ("", "s"),
                 "does": ("do", "does"), "has": ("have", "has")}
        return table[name][0 if plural else 1]
    if lang == "fr":
        if name == "le":
            return "les" if plural else ("la" if t.gender == "f" else "le")
        table = {"nt": ("nt", ""), "est": ("sont", "est"), "fait": ("font", "fait")}
        return table[name][0 if plural else 1]
    if lang == "es":
        return {"n": ("n", ""), "es": ("son", "es")}[name][0 if plural else 1]
    if lang == "de":
        if name == "kein":
            return "keine" if plural else {"m": "keinen", "n": "kein"}.get(t.gender, "keine")
        return {"sind": ("sind", "ist"), "en": ("en", "t")}[name][0 if plural else 1]
    if name == "good":
        return _ZH_GOOD[t.kind]
    return _ZH_VERB[t.kind]


def _render(lang: str, pattern: str, labels: tuple[Label | None, ...],
            slots: list[list[_Topic]]) -> list[Seg]:
    """Segments of one clause: literal text (label None) and one span per thing."""
    segs: list[Seg] = []
    pos = 0
    negated = bool(_NEGATED[lang].search(_TOKEN.sub("", pattern)))
    conj = _CONJ[lang][1 if negated else 0]
    for m in _TOKEN.finditer(pattern):
        if m.start() > pos:
            segs.append((pattern[pos:m.start()], None, False))
        pos = m.end()
        if m.group(2) is not None:
            k = int(m.group(2))
            items = slots[k]
            for i, t in enumerate(items):
                if i:
                    segs.append((conj if i == len(items) - 1 else _LIST_SEP[lang], None, False))
                lead = _article(lang, m.group(1) or "", t) + t.pre
                if lead:
                    segs.append((lead, None, False))
                segs.append((t.text, labels[k], t.proper))
                if t.post:
                    segs.append((t.post, None, False))
        else:
            k = int(m.group(4) or 0)
            segs.append((_agree(lang, m.group(3), slots[k]), None, False))
    if pos < len(pattern):
        segs.append((pattern[pos:], None, False))
    return segs


def _slot_count(pattern: str) -> int:
    return 1 + max(int(m.group(2)) for m in _TOKEN.finditer(pattern) if m.group(2) is not None)


def render_template(lang: str, pattern: str, labels: tuple[Label | None, ...],
                    topics: list[list[str]]) -> LabelledText:
    """One clause from a template and named topics (each a list sharing the slot's label), with
    no noise: for tests and for reading what a template produces. Topics are looked up in the
    language's vocabulary for their features; unknown ones are treated as plain nouns."""
    index = {t.text: t for kind in _TOPICS[lang].values() for t in kind}
    slots = [[index.get(s, _Topic(s, "watch")) for s in slot] for slot in topics]
    return _assemble(lang, [_render(lang, pattern, labels, slots)], [None])


# --------------------------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------------------------


class _Sampler:
    def __init__(self, rng: random.Random, lang: str) -> None:
        self.rng, self.lang = rng, lang
        self.used: set[str] = set()
        kinds = [k for k in KINDS if k in _TOPICS[lang]]
        self.text_kind = rng.choices(kinds, [_KIND_WEIGHTS[k] for k in kinds])[0]

    def kind(self) -> str:
        if self.rng.random() < 0.7:
            return self.text_kind
        kinds = [k for k in KINDS if k in _TOPICS[self.lang]]
        return self.rng.choices(kinds, [_KIND_WEIGHTS[k] for k in kinds])[0]

    def topic(self, kind: str) -> _Topic:
        rng, lang = self.rng, self.lang
        for _ in range(20):
            t = self._combo(kind) if rng.random() < 0.22 else None
            if t is None:
                t = rng.choice(_TOPICS[lang][kind])
            # No thing twice, nor one inside another ("musicals" and "musicals with ...").
            if not any(t.text in u or u in t.text for u in self.used):
                self.used.add(t.text)
                return t
        return t

    def _combo(self, kind: str) -> _Topic | None:
        rng, lang = self.rng, self.lang
        if lang == "en" and kind in _EN_COMBO:
            adjs, heads = _EN_COMBO[kind]
            adj = rng.sample(adjs.split(), 2 if rng.random() < 0.25 else 1)
            head = rng.choice([h.strip() for h in heads.split(";")])
            text = " ".join([*adj, head])
            return _Topic(text, kind, plural=head.endswith("s") and head not in ("series",)
                          or head == "series")
        if lang == "fr" and kind == "watch":
            heads, comps = _FR_COMBO
            head = rng.choice(list(heads))
            comp = rng.choice(comps)[0 if heads[head] == "m" else 1]
            return _Topic(f"{head} {comp}", kind, plural=True, gender=heads[head])
        if lang == "zh" and kind in _ZH_COMBO:
            pres, heads = _ZH_COMBO[kind]
            return _Topic(rng.choice(pres.split()) + rng.choice(heads.split("; ")), kind)
        return None


def _sample_slots(s: _Sampler, pattern: str, budget: int, allow_list: bool) -> list[list[_Topic]]:
    rng = s.rng
    n = _slot_count(pattern)
    slots = []
    kind = s.kind()
    for _ in range(n):
        size = 1
        if allow_list and budget - n > 0 and rng.random() < 0.35:
            size = min(1 + (budget - n), rng.choice((2, 2, 2, 3)))
            budget -= size - 1
        same = "<V" in pattern or "<good" in pattern or rng.random() < 0.6
        slot_kind = kind if same else s.kind()
        slots.append([s.topic(slot_kind) for _ in range(size)])
    return slots


_TERMINAL = {"en": [".", ".", "!", "", "...", "!!"], "fr": [".", ".", " !", "", "..."],
             "zh": ["。", "。", "！", "", "~", "！！"], "es": [".", "!", ""], "de": [".", "!", ""]}
_CONTRAST = {"en": [", but ", " but ", ", though "], "fr": [", mais ", " mais ", ", par contre "],
             "zh": ["，但是", "，不过", "，可是"], "es": [", pero "], "de": [", aber "]}
_SAME = {"en": [", and ", " and ", "; "], "fr": [", et ", " et "], "zh": ["，", "；"],
         "es": [", y "], "de": [", und "]}
_SENT = {"en": " ", "fr": " ", "zh": "", "es": " ", "de": " "}
# A clause that already ends a sentence: punctuation or an emoji.
_ENDED = re.compile(r"[?!.…？！。~\u2600-\u27bf\U0001F300-\U0001FAFF\ufe0f]\s*$")


def _cap(segs: list[Seg], upper: bool, lang: str) -> list[Seg]:
    if not segs or lang == "zh":
        return segs
    text, label, proper = segs[0]
    if not text:
        return segs
    if upper:
        text = text[0].upper() + text[1:]
    elif not proper and not re.match(r"I\b|I'", text):
        text = text[0].lower() + text[1:]
    return [(text, label, proper), *segs[1:]]


def _assemble(lang: str, clauses: list[list[Seg]], polarity: list[Polarity | None],
              rng: random.Random | None = None) -> LabelledText:
    """Joins clauses into one text; without rng, with a plain sentence break."""
    segs: list[Seg] = []
    for i, clause in enumerate(clauses):
        joined = False
        if i and rng is not None and not _ENDED.search(segs[-1][0]):
            prev, cur = polarity[i - 1], polarity[i]
            r = rng.random()
            if prev and cur and prev != cur and r < 0.45:
                segs.append((rng.choice(_CONTRAST[lang]), None, False))
                joined = True
            elif prev and cur and prev == cur and r < 0.3:
                segs.append((rng.choice(_SAME[lang]), None, False))
                joined = True
        if i and not joined:
            if not _ENDED.search(segs[-1][0]):
                end = rng.choice(_TERMINAL[lang]) if rng else ("。" if lang == "zh" else ".")
                joined = not end  # a comma splice: "I love jazz, I hate rap"
                segs.append((end or ("，" if lang == "zh" else ","), None, False))
            segs.append((_SENT[lang], None, False))
        segs.extend(_cap(clause, not joined, lang))
    if rng is not None and not _ENDED.search(segs[-1][0]):
        segs.append((rng.choice(_TERMINAL[lang]), None, False))
    return _to_text(segs, lang)


def _to_text(segs: list[Seg], lang: str) -> LabelledText:
    text, spans, pos = [], [], 0
    for s, label, _ in segs:
        if label is not None:
            spans.append(LabelledSpan(pos, pos + len(s), label[0], label[1]))
        text.append(s)
        pos += len(s)
    return LabelledText("".join(text), tuple(spans), lang)


# Noise applied to literal text only (spans keep their words, except dropped letters and case).
_TEXTING = {
    "en": [(r"\blove\b", "luv"), (r"\bhate\b", "h8"), (r"\bcan't\b", "cant"),
           (r"\bdon't\b", "dont"), (r"\bI'm\b", "im"), (r"\byou\b", "u"), (r"\breally\b", "rly"),
           (r"\bplease\b", "pls"), (r"\bthough\b", "tho"), (r"\bwith\b", "w/"),
           (r"\bkind of\b", "kinda"), (r"\bI've\b", "ive"), (r"\bI'd\b", "id"),
           (r"\bsomething\b", "smth"), (r"\bfavourite\b", "fav"), (r"\bTo be honest\b", "tbh")],
    "fr": [(r"\bJ'adore\b", "jadore"), (r"\bJe suis\b", "chui"), (r"\bbeaucoup\b", "bcp"),
           (r"\bs'il vous plaît\b", "svp"), (r"\bs'il te plaît\b", "stp"), (r"\bpour\b", "pr"),
           (r"\bc'est\b", "c"), (r"\bJe n'aime pas\b", "J'aime pas"), (r"\bquoi\b", "koi")],
    "zh": [(r"喜欢", "稀饭"), (r"什么", "啥"), (r"真的", "真滴")],
    "es": [(r"\bpor favor\b", "porfa"), (r"\bque\b", "q")],
    "de": [(r"\bnicht\b", "nich"), (r"\bhabe\b", "hab")],
}


def _strip_accents(s: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", s) if not unicodedata.combining(c))


def _drop_letter(rng: random.Random, s: str) -> str:
    words = list(re.finditer(r"[A-Za-zÀ-ÖØ-öø-ÿ]{6,}", s))
    if not words:
        return s
    w = rng.choice(words)
    i = rng.randrange(w.start() + 1, w.end() - 1)
    return s[:i] + s[i + 1:]


def _noise(rng: random.Random, lang: str, segs: list[Seg]) -> list[Seg]:
    out = list(segs)
    if rng.random() < (0.06 if lang == "zh" else 0.1):  # texting
        subs = [p for p in _TEXTING[lang] if rng.random() < 0.6]
        out = [(s if lab else _apply(s, subs), lab, pr) for s, lab, pr in out]
    if rng.random() < 0.06:  # a dropped letter in a marker word
        i = rng.randrange(len(out))
        if out[i][1] is None:
            out[i] = (_drop_letter(rng, out[i][0]), None, out[i][2])
    if rng.random() < 0.03:  # and one in a thing's name
        spans = [i for i, s in enumerate(out) if s[1] is not None]
        if spans:
            i = rng.choice(spans)
            out[i] = (_drop_letter(rng, out[i][0]), out[i][1], out[i][2])
    if lang == "fr" and rng.random() < 0.06:
        out = [(_strip_accents(s), lab, pr) for s, lab, pr in out]
    if lang == "zh" and rng.random() < 0.15:
        table = str.maketrans("，。！？：；", ",.!?:;")
        out = [(s if lab else s.translate(table), lab, pr) for s, lab, pr in out]
    r = rng.random()
    if r < 0.1:
        out = [(s.lower(), lab, pr) for s, lab, pr in out]
    elif r < 0.13:
        out = [(s.upper(), lab, pr) for s, lab, pr in out]
    if lang != "zh" and rng.random() < 0.07:  # no punctuation
        out = [(s if lab else re.sub(r"[.,!?;:…]+(?=\s|$)|[¡¿]", "", s), lab, pr)
               for s, lab, pr in out]
    return _tidy(out)


def _apply(s: str, subs: list[tuple[str, str]]) -> str:
    for pat, rep in subs:
        s = re.sub(pat, rep, s, flags=re.I)
    return s


def _tidy(segs: list[Seg]) -> list[Seg]:
    """Collapses doubled spaces and trims the ends, keeping every span intact."""
    out: list[Seg] = []
    for s, lab, pr in segs:
        if lab is None:
            s = re.sub(r" {2,}", " ", s)
            if out and out[-1][0].endswith(" ") and s.startswith(" "):
                s = s[1:]
            if not s:
                continue
        out.append((s, lab, pr))
    if out and out[0][1] is None:
        out[0] = (out[0][0].lstrip(), None, out[0][2])
    if out and out[-1][1] is None:
        out[-1] = (out[-1][0].rstrip(), None, out[-1][2])
    return [s for s in out if s[0]]


def _make_text(rng: random.Random, lang: str) -> LabelledText | None:
    s = _Sampler(rng, lang)
    r = rng.random()
    if r < 0.05:  # no preference at all
        parts = rng.sample(_NEUTRAL[lang], rng.choice((1, 1, 2)))
        if rng.random() < 0.4:
            pat = rng.choice(_NEUTRAL_TOPIC[lang])
            said = _to_text(_render(lang, pat, (None, None), _sample_slots(s, pat, 2, False)),
                            lang).text
            parts.append(said if _ENDED.search(said) else said + ("。" if lang == "zh" else "."))
        sep = "" if lang == "zh" else " "
        return LabelledText(sep.join(parts), (), lang)
    clauses: list[list[Seg]] = []
    polarity: list[Polarity | None] = []
    if r < 0.11:  # a bare noun phrase or list
        pat = _BARE[lang]
        clauses.append(_render(lang, pat, (L5,), _sample_slots(s, pat, rng.choice((1, 2, 3)),
                                                               True)))
        polarity.append(None)
        target = rng.choice((0, 0, 0, 1))
    else:
        target = rng.choice((1, 1, 1, 2, 2, 2, 3, 3, 4, 5))
    count = 0
    while count < target:
        budget = target - count
        if budget >= 2 and rng.random() < 0.35:
            pat, labels = rng.choice(_PAIR[lang])
            if _slot_count(pat) > budget:
                continue
            slots = _sample_slots(s, pat, budget, rng.random() < 0.3)
            pol = None
        else:
            pat, label = rng.choice(_SINGLE[lang])
            labels = (label,)
            slots = _sample_slots(s, pat, budget, True)
            pol = label[0]
        segs = _render(lang, pat, labels, slots)
        if rng.random() < 0.12:
            segs = [(rng.choice(_FILLER_START[lang]), None, False), *_cap(segs, False, lang)]
        elif rng.random() < 0.05:
            segs.append((rng.choice(_FILLER_END[lang]), None, False))
        if pol is not None and rng.random() < 0.1:
            segs.append(((" " if lang != "zh" else "") + rng.choice(_EMOJI[pol]), None, False))
        clauses.append(segs)
        polarity.append(pol)
        count += sum(len(x) for x in slots)
    if rng.random() < 0.08:  # a plain statement beside the preferences: its topic is no span
        pat = rng.choice(_NEUTRAL_TOPIC[lang])
        segs = _render(lang, pat, (None, None), _sample_slots(s, pat, 2, False))
        at = rng.randrange(len(clauses) + 1)
        clauses.insert(at, segs)
        polarity.insert(at, None)
    if rng.random() < 0.08:
        clauses.insert(0, [(rng.choice(_NEUTRAL[lang]), None, False)])
        polarity.insert(0, None)
    if lang in _CHAT and rng.random() < _CHAT_P:  # context that names people and places
        at = rng.randrange(len(clauses) + 1)
        clauses.insert(at, [(rng.choice(_CHAT[lang]), None, False)])
        polarity.insert(at, None)
    joined = _assemble(lang, clauses, polarity, rng)
    if _probe_meaning(joined):
        return None
    return _to_text(_noise(rng, lang, _segments(joined, clauses)), lang)


def _segments(t: LabelledText, clauses: list[list[Seg]]) -> list[Seg]:
    """The joined text cut back into literal and span segments (for the noise pass)."""
    proper = {seg[0] for c in clauses for seg in c if seg[2]}
    out: list[Seg] = []
    pos = 0
    for sp in t.spans:
        if sp.start > pos:
            out.append((t.text[pos:sp.start], None, False))
        word = t.text[sp.start:sp.end]
        out.append((word, (sp.polarity, sp.strength), word in proper))
        pos = sp.end
    if pos < len(t.text):
        out.append((t.text[pos:], None, False))
    return out


def _probe_meaning(t: LabelledText) -> bool:
    liked = {t.text[s.start:s.end] for s in t.spans if s.polarity == POS}
    disliked = {t.text[s.start:s.end] for s in t.spans if s.polarity == NEG}
    return (any(_family(x) == "mystery" for x in liked)
            and any(_family(x) == "romance" for x in disliked))


def _family(phrase: str) -> str:
    p = phrase.lower()
    if any(p.endswith(m) for m in _MYSTERY):
        return "mystery"
    if any(p.endswith(m) for m in _ROMANCE):
        return "romance"
    return ""


def generate(n: int, seed: int = 0, langs: dict[str, float] | None = None) -> list[LabelledText]:
    """n labelled texts, the same for the same seed; langs weights the languages (default
    DEFAULT_LANGS)."""
    weights = dict(DEFAULT_LANGS if langs is None else langs)
    unknown = set(weights) - set(LANGS)
    if unknown or not weights or sum(weights.values()) <= 0:
        raise ValueError(f"langs must weigh some of {LANGS}, got {langs!r}")
    names = [k for k in LANGS if weights.get(k, 0) > 0]
    w = [weights[k] for k in names]
    rng = random.Random(seed)
    out: list[LabelledText] = []
    while len(out) < n:
        lang = rng.choices(names, w)[0]
        text = _make_text(rng, lang)
        if text is not None:
            out.append(text)
    return out


def vocabulary_sizes() -> dict[str, dict[str, int]]:
    """Per language: distinct single-thing like and dislike templates, two-thing templates,
    and listed topics (combinations of adjectives and nouns come on top)."""
    out = {}
    for lang in LANGS:
        single = _SINGLE[lang]
        out[lang] = {
            "like": len({p for p, lab in single if lab[0] == POS}),
            "dislike": len({p for p, lab in single if lab[0] == NEG}),
            "pairs": len({p for p, _ in _PAIR[lang]}),
            "topics": len({t.text for kind in _TOPICS[lang].values() for t in kind}),
        }
    return out
