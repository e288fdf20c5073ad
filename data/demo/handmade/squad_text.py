"""Hand-written SQuAD-style articles for the capheads demo: (title, context, [(question, answer)]).
Written for capheads; every answer is a span of its context (the generator checks)."""

ARTICLES = [
    ("Harbor_Lighthouse",
     "The Harbor Point lighthouse was built in 1871 by the town of Westby to guide fishing boats past the "
     "rocky shoals at the mouth of the bay. Its tower is 31 meters tall and is painted with red and white "
     "bands. For sixty years the light was kept by the Moreau family, who lived in a cottage at the base of "
     "the tower. In 1932 the lamp was electrified, and the last keeper, Anna Moreau, retired in 1948. Today "
     "the lighthouse is a museum run by a volunteer society.",
     [("When was the Harbor Point lighthouse built?", "1871"),
      ("How tall is the tower?", "31 meters"),
      ("Which family kept the light for sixty years?", "the Moreau family"),
      ("What happened to the lamp in 1932?", "the lamp was electrified"),
      ("Who runs the lighthouse today?", "a volunteer society")]),
    ("Honeybee_Colonies",
     "A honeybee colony usually contains a single queen, a few hundred drones and tens of thousands of "
     "workers. The workers are sterile females that clean the hive, feed the larvae, build wax comb and "
     "forage for nectar and pollen. A worker bee lives about six weeks in summer. Foragers tell their "
     "sisters where food is by performing a waggle dance, whose angle indicates the direction of the food "
     "relative to the sun. In winter the colony survives by clustering together and eating stored honey.",
     [("How many queens does a colony usually contain?", "a single queen"),
      ("What are the workers?", "sterile females"),
      ("How long does a worker bee live in summer?", "about six weeks"),
      ("How do foragers tell their sisters where food is?", "by performing a waggle dance"),
      ("What do bees eat in winter?", "stored honey")]),
    ("Rivera_Bridge",
     "The Rivera Bridge crosses the Ostra River between the old town and the railway district. Engineers "
     "chose a steel arch design because the riverbed was too soft for many piers. Construction began in "
     "1905 and took four years, delayed by a flood that washed away the temporary scaffolding. When it "
     "opened, the bridge carried horse-drawn carts and a tram line. In 1978 the tram was removed and two "
     "lanes were added for cars.",
     [("Which river does the Rivera Bridge cross?", "the Ostra River"),
      ("Why did engineers choose a steel arch design?", "the riverbed was too soft for many piers"),
      ("How long did construction take?", "four years"),
      ("What washed away the temporary scaffolding?", "a flood"),
      ("What was removed in 1978?", "the tram")]),
    ("Sourdough",
     "Sourdough bread is leavened by a starter, a mixture of flour and water in which wild yeasts and "
     "lactic acid bacteria live together. The bacteria produce acids that give the bread its tangy flavor, "
     "while the yeasts produce the carbon dioxide that makes the dough rise. A baker keeps a starter alive "
     "by feeding it fresh flour and water, often once a day. Because the fermentation is slow, a sourdough "
     "loaf may take more than twelve hours from mixing to baking.",
     [("What leavens sourdough bread?", "a starter"),
      ("What gives the bread its tangy flavor?", "acids"),
      ("What makes the dough rise?", "carbon dioxide"),
      ("How often is a starter often fed?", "once a day"),
      ("How long may a sourdough loaf take from mixing to baking?", "more than twelve hours")]),
    ("Glacier_Retreat",
     "The Kell Glacier in the northern range has retreated almost two kilometers since measurements began "
     "in 1890. Scientists measure its length every autumn by walking to the ice front with GPS receivers. "
     "As the glacier melts, a new lake has formed in the valley it once filled. The lake is fed by "
     "meltwater and is now deep enough for small boats. Researchers expect the glacier to lose most of its "
     "remaining ice by the end of the century.",
     [("How far has the Kell Glacier retreated?", "almost two kilometers"),
      ("When did measurements begin?", "1890"),
      ("How do scientists measure the glacier's length?", "by walking to the ice front with GPS receivers"),
      ("What has formed in the valley?", "a new lake"),
      ("What feeds the lake?", "meltwater")]),
    ("Printing_Workshop",
     "In the 1520s the printer Jacob Hale opened a workshop near the cathedral square. He employed six "
     "journeymen and two apprentices, and his presses printed prayer books, almanacs and official notices "
     "for the city council. Paper was expensive, so Hale bought rags from households and sold them to a "
     "paper mill upstream. His most famous book was an illustrated herbal describing two hundred plants. "
     "After his death the workshop passed to his daughter Margaret.",
     [("Where did Jacob Hale open his workshop?", "near the cathedral square"),
      ("How many apprentices did he employ?", "two apprentices"),
      ("Why did Hale buy rags from households?", "Paper was expensive"),
      ("What was his most famous book?", "an illustrated herbal"),
      ("Who took over the workshop after his death?", "his daughter Margaret")]),
    ("Night_Train",
     "The night train from Lindau to Porto Vecchio leaves at 21:40 and arrives the next morning at 08:15. "
     "Passengers can choose a seat, a couchette with six berths, or a private sleeping cabin with a "
     "washbasin. A small dining car serves soup and sandwiches until midnight. Because the route climbs "
     "through the mountains, the train uses two locomotives on the steepest section near Alder Pass. "
     "Tickets are cheapest when bought three months in advance.",
     [("When does the night train leave Lindau?", "21:40"),
      ("How many berths does a couchette have?", "six berths"),
      ("Until when does the dining car serve food?", "until midnight"),
      ("Where does the train use two locomotives?", "on the steepest section near Alder Pass"),
      ("When are tickets cheapest?", "when bought three months in advance")]),
    ("Coral_Reefs",
     "Coral reefs are built by colonies of tiny animals called polyps, which produce skeletons of calcium "
     "carbonate. Many corals get most of their food from algae that live inside their tissues and use "
     "sunlight to make sugars. When the water becomes too warm, the corals expel the algae and turn white, "
     "an event called bleaching. Reefs cover less than one percent of the ocean floor but shelter about a "
     "quarter of all marine species.",
     [("What builds coral reefs?", "colonies of tiny animals called polyps"),
      ("What are coral skeletons made of?", "calcium carbonate"),
      ("Where do the algae live?", "inside their tissues"),
      ("What is the event called when corals expel the algae?", "bleaching"),
      ("What share of marine species do reefs shelter?", "about a quarter")]),
    ("Town_Library",
     "The Millbrook public library opened in 1903 with a gift of 2,000 books from a local mill owner. "
     "At first it was open only on Saturday afternoons, and readers had to ask a clerk to fetch books from "
     "closed shelves. Open shelves were introduced in 1921. The children's room, added in 1956, is "
     "decorated with a mural of the river painted by students of the high school. The library now lends "
     "tools and seeds as well as books.",
     [("When did the Millbrook library open?", "1903"),
      ("How many books did the mill owner give?", "2,000 books"),
      ("When was the library first open?", "only on Saturday afternoons"),
      ("Who painted the mural in the children's room?", "students of the high school"),
      ("What does the library lend besides books?", "tools and seeds")]),
    ("Marathon_Runner",
     "Elena Duarte began running at the age of thirty-four, after her doctor advised her to exercise for "
     "her heart. She joined a club that met at dawn in the city park and ran her first marathon two years "
     "later in four hours and ten minutes. Training with a coach, she lowered her time to three hours and "
     "five minutes by the age of forty. She now organizes a free weekly run for beginners.",
     [("At what age did Elena Duarte begin running?", "thirty-four"),
      ("Why did she start exercising?", "her doctor advised her to exercise for her heart"),
      ("Where did her club meet?", "in the city park"),
      ("What was her time in her first marathon?", "four hours and ten minutes"),
      ("What does she organize now?", "a free weekly run for beginners")]),
    ("Salt_Marsh",
     "A salt marsh forms where a sheltered coast is flooded by the tide twice a day. Only plants that "
     "tolerate salt, such as cordgrass and glasswort, can grow there. The dense roots trap mud, so the "
     "marsh slowly rises over the years. Salt marshes protect inland areas from storm waves and serve as "
     "nurseries for young fish and crabs. Many were drained for farmland in the nineteenth century.",
     [("How often is a salt marsh flooded by the tide?", "twice a day"),
      ("Name a plant that grows in a salt marsh.", "cordgrass"),
      ("What do the dense roots trap?", "mud"),
      ("What do salt marshes protect inland areas from?", "storm waves"),
      ("When were many salt marshes drained?", "in the nineteenth century")]),
    ("Clockmaker",
     "The clockmaker Tobias Renn built the astronomical clock on the town hall between 1766 and 1770. "
     "Besides the hours, its dials show the phase of the Moon, the sign of the zodiac and the time of "
     "sunrise. Every day at noon a procession of carved wooden figures moves across a small balcony above "
     "the dial. The clock stopped during a harsh winter in 1880 when its oil froze, and it was repaired "
     "by Renn's great-grandson.",
     [("Who built the astronomical clock?", "Tobias Renn"),
      ("What do the dials show besides the hours?", "the phase of the Moon, the sign of the zodiac and the time of sunrise"),
      ("When does the procession of figures move?", "at noon"),
      ("Why did the clock stop in 1880?", "its oil froze"),
      ("Who repaired the clock?", "Renn's great-grandson")]),
]
